# notify's texts in Spanish; en.ftl says what each message is for.

reminder-heading = Recordatorio: { $title }
reminder-subject = Recordatorio: { $title }
reminder-subject-due = Recordatorio: { $title } (vence { $due })
reminder-sentence = Recordatorio: { $title }
reminder-sentence-due = Recordatorio: { $title } (vence { $due-full })
greeting = Hola, { $name }:
greeting-anonymous = Hola:
intro = este es tu recordatorio de:
due-line = Vence: { $due-full } ({ $due })
due-html = Vence
open-task = Abrir la tarea
footer = Recibes este correo porque configuraste un recordatorio para esta tarea en tu aplicación de tareas.
zone-note = Las horas se muestran en tu zona horaria, { $timezone }.

when-today = hoy a las { $time }
when-tomorrow = mañana a las { $time }
when-yesterday = ayer a las { $time }
when-weekday = el { $weekday } a las { $time }
when-date = el { $date } a las { $time }

agenda-subject = Tu día, { $date }: { $count ->
    [one] 1 tarea
   *[other] { $count } tareas
}
agenda-heading = Tu agenda del { $date }
agenda-intro = esto vence hoy o está vencido:
agenda-overdue = Vencidas
agenda-today = Vencen hoy
agenda-more = …y { $more } más en tu aplicación de tareas.
agenda-open = Abrir tu aplicación de tareas
agenda-footer = Recibes este correo porque activaste la agenda diaria en tu aplicación de tareas. No se envía nada los días sin tareas pendientes.
agenda-sentence = Tu día, { $date }: { $count ->
    [one] 1 tarea pendiente o vencida
   *[other] { $count } tareas pendientes o vencidas
}
