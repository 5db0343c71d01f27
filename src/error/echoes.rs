//! [`Echoes`]: the secrets a request carried, in every form a server may quote them in, so that
//! they can be taken out of its error answer.

use std::cmp::Ordering;

use zeroize::Zeroizing;

use crate::credential::REDACTED;

/// Every form in which a server may quote a secret it was sent: as sent; form-encoded (space as
/// `+`) and percent-encoded (space as `%20`); JSON-escaped, with or without `/` escaped and
/// non-ASCII escaped as `\u` (serde, JavaScript, Python and PHP defaults); and JSON-escaped
/// twice (a JSON request quoted in a JSON error). Longest first, so no shorter form breaks up a
/// longer one before it is replaced; zeroized on drop.
pub(super) struct Echoes(Vec<Zeroizing<String>>);

impl Echoes {
    /// The forms of `secrets` (empty ones skipped).
    pub(super) fn of(secrets: &[impl AsRef<str>]) -> Self {
        let mut forms = Vec::new();
        for secret in secrets.iter().map(AsRef::as_ref) {
            if secret.is_empty() {
                continue;
            }
            let form = form_encoded(secret);
            let percent = Zeroizing::new(form.replace('+', "%20"));
            let json = json_escaped(secret, false, false);
            let twice = json_escaped(&json, false, false);
            forms.extend([
                Zeroizing::new(secret.to_owned()),
                form,
                percent,
                json_escaped(secret, true, false),
                json_escaped(secret, false, true),
                json_escaped(secret, true, true),
                json,
                twice,
            ]);
        }
        forms.sort_by(|a: &Zeroizing<String>, b| match b.len().cmp(&a.len()) {
            Ordering::Equal => a.as_str().cmp(b.as_str()),
            longer_first => longer_first,
        });
        forms.dedup();
        Self(forms)
    }

    /// The length of the longest form, in bytes (0 without secrets).
    pub(super) fn longest(&self) -> usize {
        self.0.first().map_or(0, |form| form.len())
    }

    /// Replaces every whole form in `text` with the redaction marker. Every place a form
    /// shows is found first, overlapping ones too, and each run they cover is replaced once:
    /// replacing one form at a time could break up an echo that overlaps another (a secret
    /// that ends the way another begins) and leave most of it.
    pub(super) fn redact(&self, text: &mut String) {
        let mut spans = Vec::new();
        for form in &self.0 {
            let mut from = 0;
            while let Some(at) = text.get(from..).and_then(|rest| rest.find(form.as_str())) {
                let start = from + at;
                spans.push((start, start + form.len()));
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if spans.is_empty() {
            return;
        }
        spans.sort_unstable();
        let mut out = String::with_capacity(text.len());
        // The end of the text replaced so far.
        let mut covered = 0;
        for (start, end) in spans {
            if start >= covered {
                out.push_str(&text[covered..start]);
                out.push_str(REDACTED);
            }
            covered = covered.max(end);
        }
        out.push_str(&text[covered..]);
        *text = out;
    }

    /// The first `max` bytes of `text` (already [`redact`](Self::redact)ed), cut at a character
    /// boundary, without whatever start of a form is left at its end: a secret the cut went
    /// through, or that the text already ended in (a body cut at the transport's size limit).
    pub(super) fn cut(&self, text: &str, max: usize) -> String {
        let mut end = text.len().min(max);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let mut kept = &text[..end];
        // Each strip shortens `kept`, so this ends; a strip may uncover the start of another form.
        while let Some(start) = self.0.iter().find_map(|form| partial_at_end(kept, form)) {
            kept = &kept[..start];
        }
        kept.to_owned()
    }

    /// `text` without the longest start of a form it ends in (once: a whole echo of a
    /// repetitive secret also ends in a start of it).
    pub(super) fn before_start_at_end<'a>(&self, text: &'a str) -> &'a str {
        let start = self
            .0
            .iter()
            .filter_map(|form| partial_at_end(text, form))
            .min();
        &text[..start.unwrap_or(text.len())]
    }
}

/// Where `text` ends in a proper, non-empty start of `form`, if it does (the longest such start).
fn partial_at_end(text: &str, form: &str) -> Option<usize> {
    (1..form.len())
        .rev()
        .filter(|&len| form.is_char_boundary(len))
        .find(|&len| text.ends_with(&form[..len]))
        .map(|len| text.len() - len)
}

/// `secret` as a form value (`application/x-www-form-urlencoded`, space as `+`).
fn form_encoded(secret: &str) -> Zeroizing<String> {
    let encoded = Zeroizing::new(serde_urlencoded::to_string([("", secret)]).unwrap_or_default());
    Zeroizing::new(encoded.strip_prefix('=').unwrap_or_default().to_owned())
}

/// `text` as the inside of a JSON string: `"`, `\` and control characters escaped as serde does;
/// `/` as `\/` when `slash`; every non-ASCII character as `\u` escapes (UTF-16) when `ascii`.
fn json_escaped(text: &str, slash: bool, ascii: bool) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(text.len() * 2));
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '/' if slash => out.push_str("\\/"),
            c if c < ' ' || (ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = r#"pa"ss\w/rd é+&="#;

    /// No four characters in a row of `secret` show in `text`.
    fn assert_no_part(text: &str, secret: &str) {
        let chars: Vec<char> = secret.chars().collect();
        for window in chars.windows(4) {
            let part: String = window.iter().collect();
            assert!(!text.contains(&part), "{part:?} shows in {text:?}");
        }
    }

    #[test]
    fn json_escapes_match_what_serde_writes() -> Result<(), serde_json::Error> {
        let serde = serde_json::to_string(SECRET)?;
        assert_eq!(
            format!("\"{}\"", *json_escaped(SECRET, false, false)),
            serde
        );
        let control = "a\u{1}b\u{8}\u{c}\n\r\t";
        assert_eq!(
            format!("\"{}\"", *json_escaped(control, false, false)),
            serde_json::to_string(control)?
        );
        // Other encoders' escapes still decode to the secret.
        for (slash, ascii) in [(true, false), (false, true), (true, true)] {
            let escaped = json_escaped(SECRET, slash, ascii);
            assert_ne!(*escaped, serde[1..serde.len() - 1]);
            let decoded: String = serde_json::from_str(&format!("\"{}\"", *escaped))?;
            assert_eq!(decoded, SECRET);
        }
        assert_eq!(*json_escaped("😀", false, true), "\\ud83d\\ude00");
        Ok(())
    }

    #[test]
    fn every_quoted_form_is_redacted() -> Result<(), serde_json::Error> {
        let echoes = Echoes::of(&[SECRET]);
        let json = serde_json::to_string(SECRET)?;
        let quoted = [
            SECRET.to_owned(),
            serde_urlencoded::to_string([("p", SECRET)]).unwrap_or_default(),
            "pa%22ss%5Cw%2Frd%20%C3%A9%2B%26%3D".to_owned(),
            json.clone(),
            serde_json::to_string(&json)?,
            r#""pa\"ss\\w\/rd \u00e9+&=""#.to_owned(),
        ];
        for quote in quoted {
            let mut text = format!("before {quote} after");
            echoes.redact(&mut text);
            assert_no_part(&text, SECRET);
            assert!(
                text.starts_with("before ") && text.contains(REDACTED) && text.ends_with(" after"),
                "{quote}: {text}"
            );
        }
        Ok(())
    }

    #[test]
    fn an_echo_overlapping_another_goes_whole() {
        // The second secret, echoed whole, right after the start of the first: replacing the
        // first (equal length, first in order) alone left `abcdef`.
        let echoes = Echoes::of(&["0123456789", "6789abcdef"]);
        let mut text = "id 0123456789abcdef.".to_owned();
        echoes.redact(&mut text);
        assert_eq!(text, "id [redacted].");
        let mut text = "0123456789 6789abcdef".to_owned();
        echoes.redact(&mut text);
        assert_eq!(text, "[redacted] [redacted]");
    }

    #[test]
    fn a_cut_leaves_no_start_of_a_secret() {
        let echoes = Echoes::of(&["s3cret-value", "other-secret"]);
        assert_eq!(echoes.cut("abc s3cret-val", 100), "abc ");
        assert_eq!(echoes.cut("abc s3cret-value", 10), "abc ");
        // Stripping one start may uncover another.
        assert_eq!(echoes.cut("abc s3cother-sec", 100), "abc ");
        assert_eq!(echoes.cut("xyz", 100), "xyz");
        assert_eq!(echoes.cut("é", 1), "");
        assert_eq!(Echoes::of(&[""; 1]).cut("abc", 2), "ab");
        assert_eq!(Echoes::of(&[""; 0]).longest(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_cut_is_a_short_prefix_that_ends_in_no_start_of_a_form(
            secrets in proptest::collection::vec(".{0,8}", 0..4),
            text in ".{0,40}",
            max in 0usize..200,
        ) {
            let echoes = Echoes::of(&secrets);
            // The text may end in the start of a secret, as a body cut at a size limit does.
            let text = format!("{text}{}", secrets.concat());
            let kept = echoes.cut(&text, max);
            prop_assert!(kept.len() <= max && text.starts_with(&kept));
            for form in &echoes.0 {
                prop_assert_eq!(partial_at_end(&kept, form), None, "{:?}", kept);
            }
            let mut redacted = text;
            echoes.redact(&mut redacted);
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                prop_assert!(
                    !redacted.split(REDACTED).any(|part| part.contains(secret.as_str())),
                    "{:?} in {:?}",
                    secret,
                    redacted
                );
            }
        }
    }
}
