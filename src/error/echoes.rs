//! [`Echoes`]: the secrets a request carried, in every form a server may quote them in, so that
//! they can be taken out of its error answer.

use std::cmp::Ordering;

use zeroize::Zeroizing;

use crate::credential::REDACTED;

/// Every form in which a server may quote a secret it was sent: as sent; percent-encoded by any
/// encoder (each byte as it is or as `%XX` in either case, a space also as `+`: form encoding,
/// and encoders that keep `/` or `!` as they are); JSON-escaped, with or without `/` escaped
/// and non-ASCII escaped as `\u` (serde, JavaScript, Python and PHP defaults); JSON-escaped
/// twice (a JSON request quoted in a JSON error); and inside the base64 of the request it was
/// sent in (see [`in_base64`]). Zeroized on drop.
pub(super) struct Echoes {
    /// The secrets as sent, JSON-escaped and in base64, sorted longest first without repeats (a plain
    /// secret's forms are often all alike).
    forms: Vec<Zeroizing<String>>,
    /// The secrets themselves, matched percent-encoded in any way.
    secrets: Vec<Zeroizing<String>>,
}

impl Echoes {
    /// The forms of `secrets` (empty ones skipped).
    pub(super) fn of(secrets: &[impl AsRef<str>]) -> Self {
        let mut forms = Vec::new();
        let mut kept = Vec::new();
        for secret in secrets.iter().map(AsRef::as_ref) {
            if secret.is_empty() {
                continue;
            }
            let json = json_escaped(secret, false, false);
            let twice = json_escaped(&json, false, false);
            let sent = [
                Zeroizing::new(secret.to_owned()),
                form_encoded(secret),
                json.clone(),
            ];
            forms.extend(sent.iter().flat_map(|sent| in_base64(sent)));
            forms.extend([
                Zeroizing::new(secret.to_owned()),
                json_escaped(secret, true, false),
                json_escaped(secret, false, true),
                json_escaped(secret, true, true),
                json,
                twice,
            ]);
            kept.push(Zeroizing::new(secret.to_owned()));
        }
        forms.sort_by(|a: &Zeroizing<String>, b| match b.len().cmp(&a.len()) {
            Ordering::Equal => a.as_str().cmp(b.as_str()),
            longer_first => longer_first,
        });
        forms.dedup();
        Self {
            forms,
            secrets: kept,
        }
    }

    /// The length of the longest echo, in bytes (0 without secrets): a secret with every byte
    /// percent-encoded, or its longest form.
    pub(super) fn longest(&self) -> usize {
        let encoded = self.secrets.iter().map(|s| 3 * s.len()).max();
        let form = self.forms.first().map(|form| form.len());
        encoded.max(form).unwrap_or(0)
    }

    /// Replaces every echo in `text` with the redaction marker, and, when the text may have
    /// been cut (`cut_end`), the longest start of one it ends in too. Every place is found
    /// first, overlapping ones too, and each run they cover is replaced once: replacing one
    /// form at a time could break up an echo that overlaps another (a secret that ends the way
    /// another begins, or a password that starts with the username) and leave most of it.
    pub(super) fn redact(&self, text: &mut String, cut_end: bool) {
        let mut spans = Vec::new();
        for form in &self.forms {
            let mut from = 0;
            while let Some(at) = text.get(from..).and_then(|rest| rest.find(form.as_str())) {
                let start = from + at;
                spans.push((start, start + form.len()));
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        // Without an escape, an echo is one as sent, found above.
        let escaped = text.contains(['%', '+']);
        for secret in self.secrets.iter().filter(|_| escaped) {
            let starts = text.char_indices().map(|(at, _)| at);
            let found = starts.filter_map(|start| {
                percent_echo_at(text.as_bytes(), start, secret.as_bytes(), cut_end)
                    .map(|end| (start, end))
            });
            spans.extend(found);
        }
        if cut_end {
            let partial = self
                .forms
                .iter()
                .filter_map(|form| partial_at_end(text, form));
            spans.extend(partial.min().map(|start| (start, text.len())));
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
}

/// Where an echo of `secret` that begins at `start` of `text` ends (the longest), each byte of
/// it as it is or percent-encoded (`%XX`, either case; a space also as `+`). When `cut_end`,
/// a start of such an echo that the text ends in, even inside an escape, ends at the end.
fn percent_echo_at(text: &[u8], start: usize, secret: &[u8], cut_end: bool) -> Option<usize> {
    let (&first, &head) = (text.get(start)?, secret.first()?);
    if first != head && first != b'%' && !(head == b' ' && first == b'+') {
        return None;
    }
    // Where the echo may go on: `%` of the secret's own may have been sent as is or escaped.
    let mut ends = vec![start];
    for &byte in secret {
        let mut next = Vec::with_capacity(ends.len());
        for &at in &ends {
            let rest = &text[at..];
            let Some(&first) = rest.first() else {
                if cut_end && at > start {
                    return Some(text.len());
                }
                continue;
            };
            if first == byte || (byte == b' ' && first == b'+') {
                next.push(at + 1);
            }
            if first == b'%' {
                match rest
                    .get(1..3)
                    .map(|hex| (hex_digit(hex[0]), hex_digit(hex[1])))
                {
                    Some((Some(high), Some(low))) if high << 4 | low == byte => next.push(at + 3),
                    // Cut inside an escape that may be this byte's.
                    None if cut_end
                        && rest.get(1).is_none_or(|&c| hex_digit(c) == Some(byte >> 4)) =>
                    {
                        return Some(text.len());
                    }
                    _ => {}
                }
            }
        }
        next.sort_unstable();
        next.dedup();
        if next.is_empty() {
            return None;
        }
        ends = next;
    }
    ends.last().copied()
}

/// The value of a hexadecimal digit, in either case.
fn hex_digit(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Where `text` ends in a proper, non-empty start of `form`, if it does (the longest such start).
fn partial_at_end(text: &str, form: &str) -> Option<usize> {
    (1..form.len())
        .rev()
        .filter(|&len| form.is_char_boundary(len))
        .find(|&len| text.ends_with(&form[..len]))
        .map(|len| text.len() - len)
}

/// `secret` as a form value (`application/x-www-form-urlencoded`, space as `+`), as a token
/// request sends it.
fn form_encoded(secret: &str) -> Zeroizing<String> {
    let encoded = Zeroizing::new(serde_urlencoded::to_string([("", secret)]).unwrap_or_default());
    Zeroizing::new(encoded.strip_prefix('=').unwrap_or_default().to_owned())
}

/// What shows of `sent` in the base64 of a request that carried it (a server may quote the
/// request so): wherever it began, the groups of three of its bytes that fill whole base64
/// characters, in the standard and URL-safe alphabets, and with `/` JSON-escaped as `\/`. At
/// most two bytes at each end are left in characters shared with their neighbours; a `sent`
/// too short to fill two groups has none.
fn in_base64(sent: &str) -> Vec<Zeroizing<String>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut forms = Vec::new();
    for skip in 0..3 {
        let Some(rest) = sent.as_bytes().get(skip..) else {
            break;
        };
        let groups = &rest[..rest.len() / 3 * 3];
        if groups.len() < 6 {
            break;
        }
        let standard = Zeroizing::new(STANDARD_NO_PAD.encode(groups));
        forms.push(Zeroizing::new(standard.replace('/', "\\/")));
        forms.push(standard);
        forms.push(Zeroizing::new(URL_SAFE_NO_PAD.encode(groups)));
    }
    forms
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
            echoes.redact(&mut text, false);
            assert_no_part(&text, SECRET);
            assert!(
                text.starts_with("before ") && text.contains(REDACTED) && text.ends_with(" after"),
                "{quote}: {text}"
            );
        }
        Ok(())
    }

    #[test]
    fn an_echo_percent_encoded_by_any_encoder_is_redacted() {
        let secret = "p!ss w/rd+é=";
        let echoes = Echoes::of(&[secret]);
        // Python's `quote` (keeps `/`), JavaScript's `encodeURIComponent` (keeps `!`), lower-case
        // hex, everything escaped, and one cut inside an escape.
        for (quote, cut_end) in [
            ("p%21ss%20w/rd%2B%C3%A9%3D", false),
            ("p!ss%20w%2Frd%2B%C3%A9%3D", false),
            ("p%21ss+w%2frd%2b%c3%a9%3d", false),
            ("%70%21%73%73%20%77%2F%72%64%2B%C3%A9%3D", false),
            ("p%21ss%20w/rd%2B%C", true),
        ] {
            let mut text = format!("before {quote}");
            echoes.redact(&mut text, cut_end);
            assert_eq!(text, "before [redacted]", "{quote}");
        }
        let mut text = "p%21ss%20w/rd%2B%C3%A9%3D!".to_owned();
        echoes.redact(&mut text, false);
        assert_eq!(text, "[redacted]!");
        // A `%` of the secret's own, sent as is or escaped.
        let echoes = Echoes::of(&["50%25off"]);
        for quote in ["50%25off", "50%2525off"] {
            let mut text = format!("<{quote}>");
            echoes.redact(&mut text, false);
            assert_eq!(text, "<[redacted]>", "{quote}");
        }
    }

    #[test]
    fn a_request_echoed_in_base64_loses_its_secrets() {
        use base64::Engine as _;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let secret = "kQ3v/Z8w+N1pL5sR7=";
        let form = serde_urlencoded::to_string([("client_secret", secret)]).unwrap_or_default();
        let json = serde_json::json!({ "password": secret }).to_string();
        let echoes = Echoes::of(&[secret]);
        for prefix in ["", "a", "ab"] {
            for body in [format!("{prefix}{form}&x=1"), format!("{prefix}{json}")] {
                for encoded in [STANDARD.encode(&body), URL_SAFE_NO_PAD.encode(&body)] {
                    for quoted in [encoded.clone(), encoded.replace('/', "\\/")] {
                        let mut text = format!("cannot read {quoted}");
                        echoes.redact(&mut text, false);
                        // What is left decodes to at most two bytes of the secret at each end.
                        let inner = &secret.as_bytes()[2..secret.len() - 2];
                        for left in text.split(REDACTED) {
                            let decoded = [STANDARD, URL_SAFE_NO_PAD].map(|engine| {
                                let left = left.rsplit(' ').next().unwrap_or_default();
                                let left = left.replace("\\/", "/");
                                let whole = left.len() / 4 * 4;
                                engine.decode(&left[..whole]).unwrap_or_default()
                            });
                            for decoded in decoded {
                                assert!(
                                    !decoded.windows(3).any(|w| inner.windows(3).any(|i| i == w)),
                                    "{body:?} as {text}"
                                );
                            }
                        }
                        assert!(text.contains(REDACTED), "{body:?} as {text}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_echo_overlapping_another_goes_whole() {
        // The second secret, echoed whole, right after the start of the first: replacing the
        // first (equal length, first in order) alone left `abcdef`.
        let echoes = Echoes::of(&["0123456789", "6789abcdef"]);
        let mut text = "id 0123456789abcdef.".to_owned();
        echoes.redact(&mut text, false);
        assert_eq!(text, "id [redacted].");
        let mut text = "0123456789 6789abcdef".to_owned();
        echoes.redact(&mut text, false);
        assert_eq!(text, "[redacted] [redacted]");
    }

    #[test]
    fn a_start_of_a_secret_at_a_cut_end_goes_with_the_echoes_it_overlaps() {
        let redact = |secrets: &[&str], text: &str, cut_end: bool| {
            let mut text = text.to_owned();
            Echoes::of(secrets).redact(&mut text, cut_end);
            text
        };
        assert_eq!(
            redact(&["s3cret-value"], "abc s3cret-val", true),
            "abc [redacted]"
        );
        // A password that starts with the username, cut: one run, not the username alone.
        assert_eq!(
            redact(&["john", "john1234secret"], "x john1234se", true),
            "x [redacted]"
        );
        // A whole JSON-escaped echo whose last two characters (`\\`) also start another form
        // (`\\u0000`, the NUL secret's JSON form escaped twice) goes whole.
        let secrets = ["\0 ¡¡¡0\\", "\0"];
        let echo = json_escaped(secrets[0], false, false);
        assert_eq!(redact(&secrets, &echo, true), "[redacted]");
        assert_eq!(redact(&["s3cret"], "nothing here", true), "nothing here");
        assert_eq!(
            redact(&["s3cret"], "ends in s", false),
            "ends in s",
            "not cut: kept"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_secret_survives_in_a_text_cut_anywhere(
            secrets in proptest::collection::vec(".{0,8}", 0..4),
            text in ".{0,40}",
            cut in 0usize..120,
        ) {
            let echoes = Echoes::of(&secrets);
            // Echoed whole, then cut anywhere, as a body at a size limit is.
            let full = format!("{text}{}", secrets.concat());
            let mut end = cut.min(full.len());
            while !full.is_char_boundary(end) {
                end -= 1;
            }
            let mut redacted = full[..end].to_owned();
            echoes.redact(&mut redacted, true);
            for part in redacted.split(REDACTED) {
                for form in &echoes.forms {
                    prop_assert!(!part.contains(form.as_str()), "{:?} in {:?}", form, redacted);
                }
            }
            for form in &echoes.forms {
                let tail = redacted.rsplit(REDACTED).next().unwrap_or_default();
                prop_assert!(
                    tail.is_empty() || partial_at_end(tail, form).is_none(),
                    "a start of {:?} ends {:?}",
                    form,
                    redacted
                );
            }
        }
    }
}
