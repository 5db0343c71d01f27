//! [`Echoes`]: the secrets a request carried, in every form a server may quote them in, so that
//! they can be taken out of its error answer.

use std::cmp::Ordering;

use zeroize::Zeroizing;

use crate::credential::REDACTED;
use crate::transport::form_encoded;

/// Every form in which a server may quote a secret it was sent: as sent; percent-encoded by any
/// encoder (each byte as it is or as `%XX` in either case, a space also as `+`: form encoding,
/// and encoders that keep `/` or `!` as they are; found in one pass over the text decoded
/// once, see [`Decoded`]); JSON-escaped, with or without `/` escaped
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
            find_all(text, form, &mut spans);
        }
        // Without an escape, an echo is one as sent, found above.
        if text.contains(['%', '+']) {
            let decoded = Decoded::of(text.as_bytes());
            for secret in &self.secrets {
                decoded.find(secret.as_bytes(), cut_end, &mut spans);
            }
        }
        if cut_end {
            let partial = self.forms.iter().filter_map(|form| {
                let start = text.len() - Search::new(form.as_bytes()).start_at_end(text.as_bytes());
                (start < text.len()).then_some(start)
            });
            spans.extend(partial.min().map(|start| (start, text.len())));
        }
        if spans.is_empty() {
            return;
        }
        // Whole characters: an escape decodes to one byte of a character (UTF-8 text keeps a
        // character's bytes all escaped or none, but a slice through one would panic).
        for (start, end) in &mut spans {
            while !text.is_char_boundary(*start) {
                *start -= 1;
            }
            while !text.is_char_boundary(*end) {
                *end += 1;
            }
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

/// A text percent-decoded once, so that each secret is looked for in one pass over it, however
/// it was escaped: `%XX` (either case) is the byte it escapes, and a space, `+` and their escapes
/// are all one byte (the space of form encoding). A `%` not followed by two hex digits is
/// itself, so a secret's own `%` matches escaped, or unescaped in an echo sent as is (found
/// whole among the forms); a `%` that merely precedes an echo starting with two hex digits
/// reads as an escape, as a decoder would read it. Zeroized on drop: the bytes may hold a
/// secret decoded.
struct Decoded {
    bytes: Zeroizing<Vec<u8>>,
    /// Where in the text each decoded byte begins, and the text's end.
    starts: Vec<usize>,
    /// The `%` of an escape cut by the end of the text (`%` or `%X`), and its hex digit.
    cut_escape: Option<(usize, Option<u8>)>,
}

impl Decoded {
    fn of(text: &[u8]) -> Self {
        let mut bytes = Zeroizing::new(Vec::with_capacity(text.len()));
        let mut starts = Vec::with_capacity(text.len() + 1);
        let mut cut_escape = None;
        let mut at = 0;
        while let Some(&byte) = text.get(at) {
            starts.push(at);
            if byte == b'%' {
                let high = text.get(at + 1).map(|&c| hex_digit(c));
                match (high, text.get(at + 2).map(|&c| hex_digit(c))) {
                    (Some(Some(high)), Some(Some(low))) => {
                        bytes.push(as_space(high << 4 | low));
                        at += 3;
                        continue;
                    }
                    (None, _) => cut_escape = Some((at, None)),
                    (Some(Some(high)), None) => cut_escape = Some((at, Some(high))),
                    _ => {}
                }
            }
            bytes.push(as_space(byte));
            at += 1;
        }
        starts.push(text.len());
        Self {
            bytes,
            starts,
            cut_escape,
        }
    }

    /// Adds to `spans` where `secret` shows in the text, each byte as it is or escaped (a
    /// Knuth-Morris-Pratt search: linear in the text, however alike its parts). When
    /// `cut_end`, also a start of it that the text ends in, even inside an escape.
    fn find(&self, secret: &[u8], cut_end: bool, spans: &mut Vec<(usize, usize)>) {
        let pattern = Zeroizing::new(secret.iter().map(|&b| as_space(b)).collect::<Vec<_>>());
        if pattern.is_empty() {
            return;
        }
        let search = Search::new(&pattern);
        let cut_at = self.cut_escape.map(|(at, _)| at);
        // Where the cut escape is among the decoded bytes, and how much of the secret ended
        // right before it.
        let mut before_cut = None;
        let mut matched = 0;
        for (i, &byte) in self.bytes.iter().enumerate() {
            if cut_at == Some(self.starts[i]) {
                before_cut = Some((i, matched));
            }
            if search.step(&mut matched, byte) {
                push_span(
                    spans,
                    (self.starts[i + 1 - pattern.len()], self.starts[i + 1]),
                );
            }
        }
        if !cut_end {
            return;
        }
        let end = self.bytes.len();
        let mut start = (matched > 0).then(|| self.starts[end - matched]);
        if let (Some((_, high)), Some((escape, before))) = (self.cut_escape, before_cut)
            && high.is_none_or(|high| high == pattern[before] >> 4)
        {
            let from = self.starts[escape - before];
            start = Some(start.map_or(from, |start| start.min(from)));
        }
        let text_end = self.starts[end];
        spans.extend(start.map(|start| (start, text_end)));
    }
}

/// A Knuth-Morris-Pratt search for one pattern: every place it shows, overlapping ones too,
/// in one pass however alike the text's parts are (a search started at each place costs the
/// pattern's length at each).
struct Search<'a> {
    pattern: &'a [u8],
    /// `fallback[i]`: the length of the longest proper start of `pattern[..=i]` that also
    /// ends it.
    fallback: Vec<usize>,
}

impl<'a> Search<'a> {
    fn new(pattern: &'a [u8]) -> Self {
        let mut fallback = vec![0; pattern.len()];
        let mut matched = 0;
        for (i, &byte) in pattern.iter().enumerate().skip(1) {
            while matched > 0 && byte != pattern[matched] {
                matched = fallback[matched - 1];
            }
            if byte == pattern[matched] {
                matched += 1;
            }
            fallback[i] = matched;
        }
        Self { pattern, fallback }
    }

    /// Takes in the next byte of the text; `matched` is how much of the pattern the text read
    /// so far ends in. True when that is the whole pattern (and `matched` then falls back, so
    /// overlapping places are found too).
    #[inline]
    fn step(&self, matched: &mut usize, byte: u8) -> bool {
        if self.pattern.is_empty() {
            return false;
        }
        while *matched > 0 && byte != self.pattern[*matched] {
            *matched = self.fallback[*matched - 1];
        }
        if byte == self.pattern[*matched] {
            *matched += 1;
        }
        if *matched < self.pattern.len() {
            return false;
        }
        *matched = self.fallback[*matched - 1];
        true
    }

    /// The length of the longest proper start of the pattern that `text` ends in.
    fn start_at_end(&self, text: &[u8]) -> usize {
        let from = text
            .len()
            .saturating_sub(self.pattern.len().saturating_sub(1));
        let mut matched = 0;
        for &byte in &text[from..] {
            self.step(&mut matched, byte);
        }
        matched
    }
}

/// Adds to `spans` every place `form` shows in `text`, overlapping ones too: found by
/// `str::find` where it is rare, then followed byte by byte while it keeps showing, so that a
/// text made of echoes costs no more than one without.
fn find_all(text: &str, form: &str, spans: &mut Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    let mut search = None;
    let mut from = 0;
    while let Some(at) = text.get(from..).and_then(|rest| rest.find(form)) {
        let search = search.get_or_insert_with(|| Search::new(form.as_bytes()));
        let mut matched = 0;
        let mut next = from + at;
        // Until no start of `form` is left pending: nothing before here is then missed.
        while let Some(&byte) = bytes.get(next) {
            next += 1;
            if search.step(&mut matched, byte) {
                push_span(spans, (next - form.len(), next));
            }
            if matched == 0 {
                break;
            }
        }
        // An echo begins at a character's start.
        while !text.is_char_boundary(next) {
            next += 1;
        }
        from = next;
    }
}

/// Adds `span` to `spans`, or, when it overlaps the last one (found by the same search, so
/// starting no sooner), makes that one reach as far: a text made of echoes keeps a few runs,
/// not one for each place.
fn push_span(spans: &mut Vec<(usize, usize)>, (start, end): (usize, usize)) {
    match spans.last_mut() {
        Some(last) if last.0 <= start && start < last.1 => last.1 = last.1.max(end),
        _ => spans.push((start, end)),
    }
}

/// A space, `+` and anything else as a form decoder reads it: `+` as a space.
fn as_space(byte: u8) -> u8 {
    if byte == b'+' { b' ' } else { byte }
}

/// The value of a hexadecimal digit, in either case.
fn hex_digit(c: u8) -> Option<u8> {
    char::from(c)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
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

    /// Where `text` ends in a proper, non-empty start of `form`, if it does (the longest such start).
    fn partial_at_end(text: &str, form: &str) -> Option<usize> {
        (1..form.len())
            .rev()
            .filter(|&len| form.is_char_boundary(len))
            .find(|&len| text.ends_with(&form[..len]))
            .map(|len| text.len() - len)
    }

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

    /// `secret` as some percent-encoder may send it: each character as it is or escaped
    /// (upper- or lower-case hex), a space also as `+`, a `%` always escaped.
    fn percent_encoded(secret: &str, choices: &[u8]) -> String {
        let mut out = String::new();
        for (c, &choice) in secret.chars().zip(choices.iter().cycle()) {
            let escape = |out: &mut String, upper: bool| {
                for byte in c.to_string().bytes() {
                    out.push_str(&if upper {
                        format!("%{byte:02X}")
                    } else {
                        format!("%{byte:02x}")
                    });
                }
            };
            match choice % 4 {
                _ if c == '%' => escape(&mut out, choice % 2 == 0),
                0 => out.push(c),
                1 => escape(&mut out, true),
                2 => escape(&mut out, false),
                _ if c == ' ' => out.push('+'),
                _ => out.push(c),
            }
        }
        out
    }

    #[test]
    fn an_echo_after_a_run_of_partial_ones_goes() {
        // Each `%41` starts the secret again: no start is missed, whatever came before.
        let echoes = Echoes::of(&["AAAAb"]);
        let mut text = format!("{}%41%41%41%41%62 {}", "%41".repeat(50), "A".repeat(50));
        echoes.redact(&mut text, false);
        assert_eq!(
            text,
            format!("{}[redacted] {}", "%41".repeat(50), "A".repeat(50))
        );
        let echoes = Echoes::of(&["abab"]);
        let mut text = "ab%61bab+ababa".to_owned();
        echoes.redact(&mut text, false);
        assert_eq!(text, "[redacted]+[redacted]a");
    }

    #[test]
    #[ignore = "a measurement: prints how long the slowest bodies found take"]
    fn slowest_bodies() {
        let n = 64 * 1024;
        let key = "003026bbc133714df1834b8638bb496e".to_owned();
        let token: String = (0..1500u32)
            .filter_map(|i| char::from_digit(i * 7 % 36, 36))
            .collect();
        let cases = [
            (
                "64 a, text of a +",
                vec!["a".repeat(64)],
                format!("{}+", "a".repeat(n - 1)),
            ),
            (
                "200 a b, text of a +",
                vec!["a".repeat(200) + "b"],
                format!("{}+", "a".repeat(n - 1)),
            ),
            (
                "32 A, text of %41",
                vec!["A".repeat(32)],
                "%41".repeat(n / 3),
            ),
            (
                "16 %, text of %25%",
                vec!["%".repeat(16)],
                "%25%".repeat(n / 4),
            ),
            ("key, text of %", vec![key.clone()], "%".repeat(n)),
            ("key, text of %30", vec![key.clone()], "%30".repeat(n / 3)),
            (
                "token and key, prose with escapes",
                vec![token, key],
                "%20refused+".repeat(n / 11),
            ),
            ("1 character", vec!["a".to_owned()], "a+".repeat(n / 2)),
        ];
        for (name, secrets, text) in cases {
            let echoes = Echoes::of(&secrets);
            for cut_end in [false, true] {
                let mut redacted = text.clone();
                let started = std::time::Instant::now();
                echoes.redact(&mut redacted, cut_end);
                eprintln!("{name}, cut {cut_end}: {:?}", started.elapsed());
            }
        }
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

        #[test]
        fn any_text_is_redacted_without_a_panic(
            secrets in proptest::collection::vec("[%+ a-fA-F0-9é😀]{0,6}", 0..4),
            text in "[%+ a-fA-F0-9xé😀]{0,80}",
        ) {
            let echoes = Echoes::of(&secrets);
            for cut_end in [false, true] {
                let mut redacted = text.clone();
                echoes.redact(&mut redacted, cut_end);
                prop_assert!(redacted.len() <= text.len() + REDACTED.len() * (text.len() + 1));
            }
        }

        #[test]
        fn an_echo_escaped_by_any_encoder_goes_whole(
            secret in "[ -~éü😀]{1,12}",
            choices in proptest::collection::vec(0u8..4, 1..12),
            before in "[a-z +]{0,10}",
            after in "[a-z %+]{0,10}",
            cut in 0usize..40,
        ) {
            let echoes = Echoes::of(&[&secret]);
            let echo = percent_encoded(&secret, &choices);
            let mut text = format!("{before}{echo}{after}");
            echoes.redact(&mut text, false);
            let left = text.split(REDACTED).any(|part| part.contains(&echo));
            prop_assert!(!left, "{:?} left in {:?}", echo, text);
            prop_assert!(text.contains(REDACTED), "{:?}", text);
            // Cut anywhere inside the echo: what is left of it goes too.
            let mut end = (before.len() + cut).min(before.len() + echo.len());
            while !echo.is_char_boundary(end - before.len()) {
                end -= 1;
            }
            let mut text = format!("{before}{echo}")[..end].to_owned();
            echoes.redact(&mut text, true);
            let shown = text.strip_prefix(before.as_str()).unwrap_or(&text);
            prop_assert!(
                end == before.len() || shown.ends_with(REDACTED),
                "{:?} cut at {} left {:?}", echo, end - before.len(), text
            );
        }
    }
}
