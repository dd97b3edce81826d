# notify's texts in French; en.ftl says what each message is for.

reminder-heading = Rappel : { $title }
reminder-subject = Rappel : { $title }
reminder-subject-due = Rappel : { $title } (échéance { $due })
reminder-sentence = Rappel : { $title }
reminder-sentence-due = Rappel : { $title } (échéance { $due-full })
greeting = Bonjour { $name },
greeting-anonymous = Bonjour,
intro = voici votre rappel pour :
due-line = Échéance : { $due-full } ({ $due })
due-html = Échéance
open-task = Ouvrir la tâche
footer = Vous recevez cet e-mail parce que vous avez défini un rappel pour cette tâche dans votre application de tâches.
zone-note = Les heures sont indiquées dans votre fuseau horaire, { $timezone }.

when-today = aujourd’hui à { $time }
when-tomorrow = demain à { $time }
when-yesterday = hier à { $time }
when-weekday = { $weekday } à { $time }
when-date = le { $date } à { $time }

agenda-subject = Votre journée, { $date } : { $count ->
    [one] 1 tâche
   *[other] { $count } tâches
}
agenda-heading = Votre agenda du { $date }
agenda-intro = voici ce qui arrive à échéance aujourd’hui, et ce qui est en retard :
agenda-overdue = En retard
agenda-today = Échéance aujourd’hui
agenda-more = …et { $more } de plus dans votre application de tâches.
agenda-open = Ouvrir votre application de tâches
agenda-footer = Vous recevez cet e-mail parce que vous avez activé l’agenda quotidien dans votre application de tâches. Rien n’est envoyé un jour sans échéance.
agenda-sentence = Votre journée, { $date } : { $count ->
    [one] 1 tâche à échéance ou en retard
   *[other] { $count } tâches à échéance ou en retard
}
