# notify's texts in Japanese; en.ftl says what each message is for.

reminder-heading = リマインダー: { $title }
reminder-subject = リマインダー: { $title }
reminder-subject-due = リマインダー: { $title }（期限: { $due }）
reminder-sentence = リマインダー: { $title }
reminder-sentence-due = リマインダー: { $title }（期限: { $due-full }）
greeting = { $name } 様
greeting-anonymous = こんにちは。
intro = 次のタスクのリマインダーです:
due-line = 期限: { $due-full }（{ $due }）
due-html = 期限
open-task = タスクを開く
footer = このメールは、Todo アプリでこのタスクにリマインダーを設定したためお送りしています。
zone-note = 時刻はあなたのタイムゾーン（{ $timezone }）で表示しています。

when-today = 今日 { $time }
when-tomorrow = 明日 { $time }
when-yesterday = 昨日 { $time }
when-weekday = { $weekday } { $time }
when-date = { $date } { $time }

agenda-subject = { $date } の予定: タスク { $count } 件
agenda-heading = { $date } のアジェンダ
agenda-intro = 今日が期限のタスクと、期限を過ぎたタスクです:
agenda-overdue = 期限切れ
agenda-today = 今日が期限
agenda-more = ほか { $more } 件は Todo アプリで確認できます。
agenda-open = Todo アプリを開く
agenda-footer = このメールは、Todo アプリで毎日のアジェンダを有効にしたためお送りしています。期限のタスクがない日は送信しません。
agenda-sentence = { $date } の予定: 期限または期限切れのタスク { $count } 件
