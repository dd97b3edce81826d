//! The template environment: minijinja's settings (HTML auto-escaped in `.html` templates,
//! our own escaping of `& < > " '`), the six templates (reminder, daily agenda) built in or read from
//! `MAIL_TEMPLATE_DIR`, and minijinja's errors as one line. Apart from the message itself
//! because it is made once, at start-up, and is where a broken template is reported.

use super::agenda::{AGENDA_HTML, AGENDA_SUBJECT, AGENDA_TEXT};
use super::{HTML, SUBJECT, TEXT};
use crate::i18n::Languages;
use minijinja::syntax::SyntaxConfig;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use std::path::Path;

const BUILT_IN: [(&str, &str); 6] = [
    (SUBJECT, include_str!("../../../templates/reminder.subject.txt")),
    (TEXT, include_str!("../../../templates/reminder.txt")),
    (HTML, include_str!("../../../templates/reminder.html")),
    (
        AGENDA_SUBJECT,
        include_str!("../../../templates/agenda.subject.txt"),
    ),
    (AGENDA_TEXT, include_str!("../../../templates/agenda.txt")),
    (AGENDA_HTML, include_str!("../../../templates/agenda.html")),
];

/// The template environment: minijinja's settings and the six templates, each from `dir`
/// when it holds a file of that name, built in otherwise; and a language's own, from
/// `dir/<tag>/` (as `<tag>/<name>`), for each language that has one.
pub(super) fn environment(dir: Option<&Path>, languages: &Languages) -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_syntax(syntax());
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") || name.ends_with(".htm") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // HTML escaping of & < > " ' only: minijinja's default also writes `/` as `&#x2f;`,
    // which turns every link into entity soup that spam filters count as obfuscation.
    env.set_formatter(|out, state, value| match value.as_str() {
        Some(text) if *state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            out.write_str(&escape_html(text)).map_err(minijinja::Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    });
    for (name, built_in) in BUILT_IN {
        env.add_template_owned(name, source(dir, name, built_in)?)
            .map_err(|e| format!("mail template {name}: {}", describe(name, &e)))?;
        for tag in languages.tags() {
            let path = dir.map(|d| d.join(tag).join(name)).filter(|p| p.exists());
            let Some(path) = path else { continue };
            let own = format!("{tag}/{name}");
            tracing::info!("mail template {own} from {}", path.display());
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("MAIL_TEMPLATE_DIR: {} cannot be read: {e}", path.display()))?;
            env.add_template_owned(own.clone(), text)
                .map_err(|e| format!("mail template {own}: {}", describe(&own, &e)))?;
        }
    }
    Ok(env)
}

/// The templates' syntax: the default delimiters, block tags taking their line with them.
fn syntax() -> SyntaxConfig {
    SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .expect("the default delimiters are valid")
}

/// The template `name`: the file of that name in `dir` when there is one, else `built_in`.
fn source(dir: Option<&Path>, name: &str, built_in: &str) -> Result<String, String> {
    match dir.map(|d| d.join(name)).filter(|p| p.exists()) {
        Some(path) => {
            tracing::info!("mail template {name} from {}", path.display());
            std::fs::read_to_string(&path)
                .map_err(|e| format!("MAIL_TEMPLATE_DIR: {} cannot be read: {e}", path.display()))
        }
        None => Ok(built_in.to_owned()),
    }
}

/// A minijinja error with its causes, on one line.
pub(super) fn describe(name: &str, e: &minijinja::Error) -> String {
    let mut text = format!("{name}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// `text` with `& < > " '` written as HTML entities.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
