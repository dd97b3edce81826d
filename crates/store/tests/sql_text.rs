//! SQL only through bound parameters: every statement in `crates/store/src` is a string
//! constant or literal, or a `format!` whose holes are only the known-safe fragments (a list
//! of `$n` placeholders, a table name from a fixed array, the `FOR UPDATE SKIP LOCKED`
//! dialect fragment). Values always travel through `.bind(…)`. A new way of building SQL
//! text fails here until it is reviewed and added to the allow-list below.

use std::path::{Path, PathBuf};

/// The only expressions allowed inside a `format!` that builds SQL, and where each comes from.
const SAFE_HOLES: [(&str, &str); 3] = [
    // `$first, $first+1, …` built from integers by `placeholders()`.
    ("list", "let list = placeholders("),
    // Iterates a fixed array of table names.
    (
        "table",
        "for table in [\"users\", \"tasks\", \"reminders\", \"recurring_tasks\", \"deliveries\"]",
    ),
    // A `&'static str` chosen by backend: "FOR UPDATE SKIP LOCKED" or "".
    (
        "skip_locked(self)",
        "pub(crate) fn skip_locked(store: &Store) -> &'static str",
    ),
];

/// Words that make a format string SQL.
const SQL_WORDS: [&str; 8] = [
    "SELECT ", "UPDATE ", "INSERT ", "DELETE ", " FROM ", " WHERE ", "CREATE ", "DROP ",
];

/// The functions that send SQL text to the database.
const SQL_SINKS: [&str; 5] = [
    "sqlx::query(",
    "sqlx::query_as(",
    "sqlx::query_scalar(",
    "sqlx::raw_sql(",
    "QueryBuilder",
];

fn sources() -> Vec<(PathBuf, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                out.push((p, text));
            }
        }
    }
    assert!(
        out.len() >= 5,
        "expected the store's sources under {}",
        Path::new(env!("CARGO_MANIFEST_DIR")).display()
    );
    out
}

/// The top-level arguments of the call whose `(` is at `open`, as source text (string
/// literals and nested brackets kept whole).
fn call_args(text: &str, open: usize) -> Vec<String> {
    let bytes = text.as_bytes();
    assert_eq!(bytes[open], b'(');
    let (mut depth, mut i, mut start) = (0usize, open + 1, open + 1);
    let mut args = Vec::new();
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 2, // a char literal like '('
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth > 0 => depth -= 1,
            b')' => {
                args.push(text[start..i].trim().to_owned());
                return args.into_iter().filter(|a| !a.is_empty()).collect();
            }
            b',' if depth == 0 => {
                args.push(text[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced call at byte {open}");
}

/// The holes (`{}`, `{name}`, `{name:?}`) of a format string literal, `{{` excluded.
fn holes(literal: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = literal.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' {
            if chars.peek() == Some(&'{') {
                chars.next();
                continue;
            }
            let hole: String = chars.by_ref().take_while(|c| *c != '}').collect();
            out.push(hole.split(':').next().unwrap_or("").to_owned());
        }
    }
    out
}

fn line_of(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

#[test]
fn sql_text_is_built_only_from_safe_fragments() {
    let mut sql_formats = 0;
    let mut problems = Vec::new();
    for (path, text) in sources() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for (at, _) in text.match_indices("format!(") {
            let args = call_args(&text, at + "format!".len());
            let literal = &args[0];
            if !SQL_WORDS.iter().any(|w| literal.to_ascii_uppercase().contains(w)) {
                continue;
            }
            sql_formats += 1;
            let mut positional = args[1..].iter();
            for hole in holes(literal) {
                let expr = if hole.is_empty() {
                    positional.next().cloned().unwrap_or_default()
                } else {
                    hole
                };
                if !SAFE_HOLES.iter().any(|(safe, _)| *safe == expr) {
                    problems.push(format!(
                        "{file}:{}: SQL built with `{{{expr}}}`: bind the value instead, or review it and add it to SAFE_HOLES",
                        line_of(&text, at)
                    ));
                }
            }
        }
        for sink in SQL_SINKS {
            for (at, _) in text.match_indices(sink) {
                if sink == "QueryBuilder" {
                    problems.push(format!(
                        "{file}:{}: QueryBuilder is not reviewed",
                        line_of(&text, at)
                    ));
                    continue;
                }
                let first = call_args(&text, at + sink.len() - 1).remove(0);
                let is_literal = first.starts_with('"');
                let is_const = first
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit());
                let is_checked_format = first == "&sql" && text.contains("let sql = format!(");
                if is_const && !is_literal {
                    let declared = text.contains(&format!("const {first}: &str = \""))
                        || text.contains(&format!("const {first}: &str =\n"));
                    if !declared {
                        problems.push(format!(
                            "{file}:{}: `{first}` is not a `const &str` string literal in this file",
                            line_of(&text, at)
                        ));
                    }
                } else if !is_literal && !is_checked_format {
                    problems.push(format!(
                        "{file}:{}: SQL text from `{first}`: use a literal, a const or a checked format!",
                        line_of(&text, at)
                    ));
                }
            }
        }
        for bad in [".push_str(", "+ \"", "concat!(", "QueryBuilder::"] {
            for (at, _) in text.match_indices(bad) {
                let line = text[..at].rsplit('\n').next().unwrap_or("");
                if !line.trim_start().starts_with("//") {
                    problems.push(format!(
                        "{file}:{}: string building with `{bad}`: review it",
                        line_of(&text, at)
                    ));
                }
            }
        }
    }
    let all: String = sources().into_iter().map(|(_, t)| t).collect();
    for (name, origin) in SAFE_HOLES {
        assert!(
            all.contains(origin),
            "the safe fragment `{name}` no longer comes from `{origin}`: review it"
        );
    }
    assert!(
        all.contains("\"FOR UPDATE SKIP LOCKED\""),
        "skip_locked() must return fixed text"
    );
    assert!(
        sql_formats >= 4,
        "found only {sql_formats} SQL format! calls: is the scan still looking at the right files?"
    );
    assert!(
        problems.is_empty(),
        "SQL text not built from bound parameters:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_scan_catches_interpolated_values() {
    let bad = r#"let sql = format!("SELECT * FROM users WHERE email = '{email}' AND id = {}", id);"#;
    let at = bad.find("format!(").unwrap();
    let args = call_args(bad, at + "format!".len());
    assert_eq!(args.len(), 2);
    assert_eq!(holes(&args[0]), ["email", ""]);
    assert!(!SAFE_HOLES.iter().any(|(s, _)| *s == "email" || *s == "id"));
}
