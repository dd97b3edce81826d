//! Hiding the passwords of URLs inside free text: the one text redactor of the workspace.
//!
//! Connection strings carry their password in the URL (`postgres://user:password@host/db`,
//! `smtp://user:password@relay`), and the texts built around them — a driver's error, a
//! parse error quoting its input, an `anyhow` chain printed at exit — repeat it. Every crate
//! that shows such a text passes it through [`passwords`] first: the store (its errors and
//! `StoreOptions`' `Debug`), the host (a binary's last line on stderr), notify (`SMTP_URL`'s
//! errors). It lives here, in the crate every other one depends on, so that there is one
//! implementation and one set of tests.
//!
//! It does one job. Two neighbours do others and stay where they are:
//! - notify's `channels::guard::redacted` shows a *parsed* endpoint as scheme, host and port
//!   only, because a webhook's path and query are secrets too (Slack, Discord);
//! - notify's SMTP mailer scrubs the password it *knows* from a server's answer, wherever and
//!   however the answer repeats it, URL or not.
//!
//! A secret held in a field is a `secrecy::SecretString` instead, whose `Debug` never shows it.

/// `text` with the password of every `scheme://user:password@host…` in it replaced by `***`;
/// the rest (scheme, user, host, path, the text around) is kept, so that the message still
/// says which server it is about.
///
/// A URL ends at white space or a quote. A badly encoded password may itself hold `@` or `/`,
/// so the user info ends at the URL's last `@`. A URL without a password (`sqlite://x.db`,
/// `smtp://user@relay`) is left as it is.
pub fn passwords(text: &str) -> String {
    let mut pieces: Vec<&str> = Vec::new();
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        pieces.push(&rest[..scheme_end + 3]);
        rest = &rest[scheme_end + 3..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(rest.len());
        let url = &rest[..end];
        match (url.rfind('@'), url.find(':')) {
            (Some(at), Some(colon)) if colon < at => pieces.extend([&url[..colon], ":***", &url[at..]]),
            _ => pieces.push(url),
        }
        rest = &rest[end..];
    }
    pieces.push(rest);
    pieces.concat()
}

#[cfg(test)]
mod tests {
    use super::passwords;

    #[test]
    fn hides_passwords_and_keeps_the_rest() {
        assert_eq!(
            passwords("postgres://app:s3cret@db:5432/todo"),
            "postgres://app:***@db:5432/todo"
        );
        assert_eq!(passwords("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(passwords("smtp://user@relay:25"), "smtp://user@relay:25");
        assert_eq!(
            passwords("postgres://app:p@ss@db:5432/todo"),
            "postgres://app:***@db:5432/todo"
        );
        assert_eq!(
            passwords("postgres://app:pa/ss@db/todo"),
            "postgres://app:***@db/todo"
        );
        assert_eq!(
            passwords("a postgres://a:x@db/1 and \"smtp://u:y@relay:25\"; sqlite://z.db"),
            "a postgres://a:***@db/1 and \"smtp://u:***@relay:25\"; sqlite://z.db"
        );
        assert_eq!(passwords("no URL here"), "no URL here");
    }
}
