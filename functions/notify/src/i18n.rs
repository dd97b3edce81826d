//! Messages in the user's language: the texts from Fluent (`locales/<tag>.ftl`, Mozilla's
//! localization system, with its own plural and grammar rules per message), the dates and
//! times from ICU4X (CLDR's formats and names: "Montag, 7. Dezember 2026", "2026年12月7日月曜日",
//! never month names written here).
//!
//! English (`en`, with American formats, and `en-GB`), German, French, Spanish and Japanese
//! are built in. `MAIL_TEMPLATE_DIR/<tag>/
//! messages.ftl` replaces a built-in language's messages, one by one, or adds a language
//! (`pt-BR`, `it`): every message English has must be there, and every message must format,
//! or start-up stops naming the file and the message, as a broken template does. A user's
//! locale (`user_preferences.locale`) picks the language with the same tag, else the first
//! with the same language subtag (`de-AT` reads German), else English.

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource};
use fluent_syntax::ast::Entry;
use icu_datetime::fieldsets::{self, E, MDE, T, YMDE, YMDET};
use icu_datetime::input::{Date, DateTime, Time};
use icu_datetime::DateTimeFormatter;
use icu_locale_core::Locale;
use std::path::Path;

/// The built-in languages: tag and Fluent source. English first: the fallback, and the
/// messages every other language must have.
const BUILT_IN: [(&str, &str); 6] = [
    ("en", include_str!("../locales/en.ftl")),
    // The same messages, with British formats (24-hour clock, day before month).
    ("en-GB", include_str!("../locales/en.ftl")),
    ("de", include_str!("../locales/de.ftl")),
    ("fr", include_str!("../locales/fr.ftl")),
    ("es", include_str!("../locales/es.ftl")),
    ("ja", include_str!("../locales/ja.ftl")),
];

/// Every language notify writes in, made once at start-up.
pub struct Languages(Vec<Language>);

/// One language: its messages and its date and time formats.
pub struct Language {
    tag: String,
    /// The ids of its messages.
    ids: Vec<String>,
    bundle: FluentBundle<FluentResource>,
    date_time: DateTimeFormatter<YMDET>,
    date: DateTimeFormatter<YMDE>,
    day_and_month: DateTimeFormatter<MDE>,
    weekday: DateTimeFormatter<E>,
    time: DateTimeFormatter<T>,
}

impl std::fmt::Debug for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.tag)
    }
}

/// A local wall time, as the formats take it.
#[derive(Debug, Clone, Copy)]
pub struct Wall {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
}

impl Languages {
    /// The built-in languages, each with its messages replaced from `dir/<tag>/messages.ftl`
    /// when there is one, and the languages `dir` adds.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut sources: Vec<(String, Vec<(String, String)>)> = BUILT_IN
            .iter()
            .map(|(tag, text)| {
                (
                    tag.to_string(),
                    vec![(format!("locales/{tag}.ftl"), text.to_string())],
                )
            })
            .collect();
        for (tag, path, text) in overrides(dir)? {
            match sources.iter_mut().find(|(t, _)| t.eq_ignore_ascii_case(&tag)) {
                Some((_, texts)) => texts.push((path, text)),
                None => sources.push((tag, vec![(path, text)])),
            }
        }
        let languages = sources
            .into_iter()
            .map(|(tag, texts)| Language::new(&tag, texts))
            .collect::<Result<Vec<_>, _>>()?;
        let all = Self(languages);
        all.check()?;
        Ok(all)
    }

    /// The tags of the languages, English first.
    pub fn tags(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|l| l.tag.as_str())
    }

    /// The language for a user's `locale`: see the module docs.
    pub fn pick(&self, locale: &str) -> &Language {
        let wanted = locale.trim();
        let language = |tag: &str| tag.split('-').next().unwrap_or(tag).to_ascii_lowercase();
        self.0
            .iter()
            .find(|l| l.tag.eq_ignore_ascii_case(wanted))
            .or_else(|| self.0.iter().find(|l| language(&l.tag) == language(wanted)))
            .unwrap_or(&self.0[0])
    }

    /// Every language has every English message, and each formats without an error.
    fn check(&self) -> Result<(), String> {
        let english = &self.0[0];
        let ids: Vec<&str> = english.ids().collect();
        let mut args = FluentArgs::new();
        for name in [
            "title", "name", "due", "due-full", "url", "timezone", "time", "weekday", "date",
        ] {
            args.set(name, "x");
        }
        for name in ["count", "more"] {
            args.set(name, 2);
        }
        for language in &self.0 {
            for id in &ids {
                language
                    .try_text(id, &args)
                    .map_err(|e| format!("notify's messages in {:?}: {e}", language.tag))?;
            }
        }
        Ok(())
    }
}

/// The `messages.ftl` files in `dir`'s subdirectories named like language tags:
/// (tag, path, text).
fn overrides(dir: Option<&Path>) -> Result<Vec<(String, String, String)>, String> {
    let Some(dir) = dir else { return Ok(Vec::new()) };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join("messages.ftl");
        let tag = entry.file_name().to_string_lossy().into_owned();
        if !path.is_file() {
            continue;
        }
        tag.parse::<Locale>().map_err(|e| {
            format!(
                "MAIL_TEMPLATE_DIR: {} is not in a directory named like a language tag ({e})",
                path.display()
            )
        })?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("MAIL_TEMPLATE_DIR: {} cannot be read: {e}", path.display()))?;
        tracing::info!("notify's messages in {tag} from {}", path.display());
        found.push((tag, path.display().to_string(), text));
    }
    found.sort();
    Ok(found)
}

impl Language {
    /// The language `tag` from its Fluent sources (name, text), later ones replacing earlier
    /// ones message by message.
    fn new(tag: &str, sources: Vec<(String, String)>) -> Result<Self, String> {
        let locale: Locale = tag
            .parse()
            .map_err(|e| format!("{tag:?} is not a language tag: {e}"))?;
        let id = tag
            .parse()
            .map_err(|e| format!("{tag:?} is not a language tag: {e:?}"))?;
        let mut bundle = FluentBundle::new_concurrent(vec![id]);
        // No Unicode isolation marks around values: they would show in subjects and chats.
        bundle.set_use_isolating(false);
        let mut ids = Vec::new();
        for (name, text) in sources {
            let resource = FluentResource::try_new(text).map_err(|(_, errors)| {
                let first = errors.first().map(|e| format!("{e:?}")).unwrap_or_default();
                format!("{name}: not valid Fluent: {first}")
            })?;
            ids.extend(resource.entries().filter_map(|entry| match entry {
                Entry::Message(m) => Some(m.id.name.to_owned()),
                _ => None,
            }));
            bundle.add_resource_overriding(resource);
        }
        let prefs = || locale.clone().into();
        let formats = |e: icu_datetime::DateTimeFormatterLoadError| format!("{tag}: no date formats: {e}");
        Ok(Self {
            tag: tag.to_owned(),
            ids,
            date_time: DateTimeFormatter::try_new(prefs(), YMDE::long().with_time_hm()).map_err(formats)?,
            date: DateTimeFormatter::try_new(prefs(), YMDE::long()).map_err(formats)?,
            day_and_month: DateTimeFormatter::try_new(prefs(), MDE::long()).map_err(formats)?,
            weekday: DateTimeFormatter::try_new(prefs(), fieldsets::E::long()).map_err(formats)?,
            time: DateTimeFormatter::try_new(prefs(), T::hm()).map_err(formats)?,
            bundle,
        })
    }

    /// The language's tag (`de`, `pt-BR`), as the HTML part's `lang`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The ids of the messages this language has.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }

    /// Message `id` formatted with `args`, or why not.
    pub(crate) fn try_text(&self, id: &str, args: &FluentArgs) -> Result<String, String> {
        let message = self
            .bundle
            .get_message(id)
            .ok_or_else(|| format!("message {id:?} is missing"))?;
        let pattern = message
            .value()
            .ok_or_else(|| format!("message {id:?} has no value"))?;
        let mut errors = Vec::new();
        let text = self.bundle.format_pattern(pattern, Some(args), &mut errors);
        match errors.first() {
            None => Ok(text.into_owned()),
            Some(e) => Err(format!("message {id:?}: {e:?}")),
        }
    }

    /// Message `id` with `args` (checked at start-up: every message formats).
    pub fn text(&self, id: &str, args: &FluentArgs) -> String {
        self.try_text(id, args).unwrap_or_else(|e| {
            tracing::error!("notify's messages in {}: {e}", self.tag);
            String::new()
        })
    }

    /// `wall` as the formats of this language write it: date and time, date, day and
    /// month, weekday, time.
    pub fn formats(&self, wall: Wall) -> Option<Formatted> {
        let input = DateTime {
            date: Date::try_new_iso(wall.year, wall.month, wall.day).ok()?,
            time: Time::try_new(wall.hour, wall.minute, 0, 0).ok()?,
        };
        Some(Formatted {
            date_time: self.date_time.format(&input).to_string(),
            date: self.date.format(&input).to_string(),
            day_and_month: self.day_and_month.format(&input).to_string(),
            weekday: self.weekday.format(&input).to_string(),
            time: self.time.format(&input).to_string(),
        })
    }
}

/// A local time written in one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatted {
    pub date_time: String,
    pub date: String,
    pub day_and_month: String,
    pub weekday: String,
    pub time: String,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A built-in language, for the other modules' tests.
    pub(crate) fn language(tag: &str) -> &'static Language {
        static LANGUAGES: std::sync::OnceLock<Languages> = std::sync::OnceLock::new();
        LANGUAGES.get_or_init(|| Languages::load(None).unwrap()).pick(tag)
    }

    /// The built-in English.
    pub(crate) fn english() -> &'static Language {
        language("en")
    }

    fn monday() -> Wall {
        Wall {
            year: 2026,
            month: 12,
            day: 7,
            hour: 9,
            minute: 5,
        }
    }

    #[test]
    fn each_built_in_language_writes_dates_its_own_way() {
        let all = Languages::load(None).unwrap();
        let f = |tag: &str| all.pick(tag).formats(monday()).unwrap();
        assert_eq!(f("de-DE").date, "Montag, 7. Dezember 2026");
        assert_eq!(f("fr").weekday, "lundi");
        assert_eq!(f("es").day_and_month, "lunes, 7 de diciembre");
        assert_eq!(f("ja").date, "2026年12月7日月曜日");
        assert_eq!(f("en").date, "Monday, December 7, 2026");
    }

    #[test]
    fn a_locale_picks_its_tag_then_its_language_then_english() {
        let all = Languages::load(None).unwrap();
        assert_eq!(all.pick("de-DE").tag(), "de");
        assert_eq!(all.pick("DE-at").tag(), "de");
        assert_eq!(all.pick("pt-BR").tag(), "en");
        assert_eq!(all.pick("en-gb").tag(), "en-GB");
        assert_eq!(all.pick("en-US").tag(), "en");
        assert_eq!(all.pick("").tag(), "en");
    }

    #[test]
    fn overrides_replace_messages_add_languages_and_a_broken_one_stops_start_up() {
        let dir = tempfile::tempdir().unwrap();
        let write = |tag: &str, text: &str| {
            std::fs::create_dir_all(dir.path().join(tag)).unwrap();
            std::fs::write(dir.path().join(tag).join("messages.ftl"), text).unwrap();
        };
        write("de", "intro = hier kommt deine Erinnerung:\n");
        let all = Languages::load(Some(dir.path())).unwrap();
        assert_eq!(
            all.pick("de").text("intro", &FluentArgs::new()),
            "hier kommt deine Erinnerung:"
        );
        // A language added with one message only: refused, naming what is missing.
        write("it", "intro = ecco il tuo promemoria:\n");
        let e = Languages::load(Some(dir.path())).err().unwrap();
        assert!(e.contains("\"it\"") && e.contains("missing"), "{e}");
        // Not Fluent at all.
        write("it", "intro = { $\n");
        let e = Languages::load(Some(dir.path())).err().unwrap();
        assert!(
            e.contains("messages.ftl") && e.contains("not valid Fluent"),
            "{e}"
        );
    }
}
