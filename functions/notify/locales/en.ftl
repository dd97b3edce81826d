# notify's texts in English: the reminder e-mail (subject, text and HTML parts), the webhook
# and push texts, and the words around a local time. Dates and times come formatted for the
# language by ICU4X ($date, $time, $weekday, $day-and-month, $date-time); every message
# here is required in every language (docs/PREFERENCES.md, "Messages in the user's language").
# Variables: $title (the task, one line), $name (the recipient), $due (the due time in
# words, e.g. "today at 18:00"), $due-full (date, time and zone), $url (the task in the todo
# app), $timezone (the IANA zone the times are shown in).

reminder-heading = Reminder: { $title }
reminder-subject = Reminder: { $title }
reminder-subject-due = Reminder: { $title } (due { $due })
reminder-sentence = Reminder: { $title }
reminder-sentence-due = Reminder: { $title } (due { $due-full })
greeting = Hello { $name },
greeting-anonymous = Hello,
intro = this is your reminder for:
due-line = Due: { $due-full } ({ $due })
due-html = Due
open-task = Open the task
footer = You get this e-mail because you set a reminder for this task in your todo app.
zone-note = Times are shown in your time zone, { $timezone }.

when-today = today at { $time }
when-tomorrow = tomorrow at { $time }
when-yesterday = yesterday at { $time }
when-weekday = on { $weekday } at { $time }
when-date = on { $date } at { $time }

# The daily agenda (docs/PREFERENCES.md, "The daily agenda"). Variables: $date (the day,
# written in full), $count (the open tasks due that day or overdue), $more (those beyond the
# ones listed), $name, $url (the todo app), $timezone.
agenda-subject = Your day, { $date }: { $count ->
    [one] 1 task
   *[other] { $count } tasks
}
agenda-heading = Your agenda for { $date }
agenda-intro = here is what is due today, and what is overdue:
agenda-overdue = Overdue
agenda-today = Due today
agenda-more = …and { $more } more in your todo app.
agenda-open = Open your todo app
agenda-footer = You get this e-mail because you turned on the daily agenda in your todo app. Nothing is sent on a day with nothing due.
agenda-sentence = Your day, { $date }: { $count ->
    [one] 1 task due or overdue
   *[other] { $count } tasks due or overdue
}
