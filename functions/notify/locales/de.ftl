# notify's texts in German; en.ftl says what each message is for.

reminder-heading = Erinnerung: { $title }
reminder-subject = Erinnerung: { $title }
reminder-subject-due = Erinnerung: { $title } (fällig { $due })
reminder-sentence = Erinnerung: { $title }
reminder-sentence-due = Erinnerung: { $title } (fällig { $due-full })
greeting = Hallo { $name },
greeting-anonymous = Hallo,
intro = hier ist deine Erinnerung an:
due-line = Fällig: { $due-full } ({ $due })
due-html = Fällig
open-task = Aufgabe öffnen
footer = Du bekommst diese E-Mail, weil du in deiner Todo-App eine Erinnerung für diese Aufgabe gesetzt hast.
zone-note = Zeiten sind in deiner Zeitzone angegeben, { $timezone }.

when-today = heute um { $time }
when-tomorrow = morgen um { $time }
when-yesterday = gestern um { $time }
when-weekday = am { $weekday } um { $time }
when-date = am { $date } um { $time }

agenda-subject = Dein Tag, { $date }: { $count ->
    [one] 1 Aufgabe
   *[other] { $count } Aufgaben
}
agenda-heading = Deine Agenda für { $date }
agenda-intro = das ist heute fällig oder überfällig:
agenda-overdue = Überfällig
agenda-today = Heute fällig
agenda-more = …und { $more } weitere in deiner Todo-App.
agenda-open = Todo-App öffnen
agenda-footer = Du bekommst diese E-Mail, weil du in deiner Todo-App die tägliche Agenda eingeschaltet hast. An Tagen ohne fällige Aufgaben kommt keine.
agenda-sentence = Dein Tag, { $date }: { $count ->
    [one] 1 Aufgabe fällig oder überfällig
   *[other] { $count } Aufgaben fällig oder überfällig
}
