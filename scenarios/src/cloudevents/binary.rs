//! Binary content mode, the other half of the CloudEvents HTTP binding:
//! the attributes travel as `ce-*` headers, `datacontenttype` as
//! `Content-Type`, and the body is `data`, opaque bytes.
//!
//! A [`Message`] is what an HTTP server hands its application once it has
//! framed a request: header fields (name, value) and a body. Reading one is
//! not a JSON decode: the headers are read here, the same for every
//! decoder, and the cell's decoder checks the body as JSON only when
//! `Content-Type` says it is JSON (`application/json`, or a media type with
//! the `+json` suffix) and the body is not empty; any other body is opaque
//! and only its presence is recorded. See [`super::Decoders::decode_binary`].
//!
//! # The binding's rules
//! - Header names are case-insensitive: `CE-Subject` is `ce-subject`.
//!   Headers other than `ce-*` and `Content-Type` are not the event's.
//! - A header value is trimmed of the spaces and tabs around it, unquoted
//!   when it is a quoted string (RFC 7230 §3.2.6, backslash escapes
//!   included), then percent-decoded once (`%xy`, hex digits of either
//!   case); the decoded bytes must be UTF-8 (`%C0%A0`, an overlong
//!   encoding, is refused). Raw bytes outside printable ASCII, space and
//!   tab are refused: senders percent-encode them. `Content-Type` is an
//!   HTTP media type, taken as it stands (not percent-decoded).
//! - Header values are strings: every extension decodes to
//!   [`ExtValue::String`] (a receiver that knows an extension's type parses
//!   its canonical string itself), in both extension modes.
//! - There is no `data_base64` in this mode: the body carries binary data
//!   as it is. `ce-data`, `ce-data_base64` and `ce-datacontenttype` are
//!   refused (`bad-attribute-name`): this mode carries those elsewhere.
//! - An empty body is an absent `data`.
//!
//! Which reason wins when a message breaks several rules: "In binary
//! content mode" on [`DecodeError`].
//!
//! # Guarantees
//! - **Borrowed in place**: in the borrowed representation, a value that
//!   needs no decoding (plain printable ASCII) points into the message; a
//!   percent-encoded or quoted value is decoded into a buffer reused from
//!   message to message and points there. Reading the headers allocates
//!   nothing per message in the borrowed representation with struct
//!   extensions (at most two of them outside the known typed fields); nor
//!   does checking a JSON body, except with serde_json, whose deserializer
//!   grows a fresh scratch buffer for a body with an escaped string (one
//!   allocation; `tests/cloudevents_allocations.rs` counts them).
//! - **No panic** on any header or body bytes (a property test feeds random
//!   and mutated messages to every decoder).
//!
//! # Corpus files
//! A binary-mode corpus file (`.http`) holds HTTP/1.1 messages back to
//! back, as on the wire: an optional start line (`POST /path HTTP/1.1` or
//! `HTTP/1.1 200 OK`), header lines `Name: value` (CRLF or LF), an empty
//! line, then the body: `Content-Length` bytes when that header is
//! present, else the rest of the file. Blank lines between messages are
//! skipped. [`Message::parse_stream`] reads it; [`Message::to_wire`] writes
//! one message in that form.

use super::decode::Strings;
use super::event::{CloudEvent, ExtValue, Extensions};
use super::rules::{Attribute, DecodeError, Members};

/// A binary-mode message: header fields and a body, kept back to back in
/// one buffer (as an HTTP server keeps a request it has framed).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// Every header's name and value, then the body.
    bytes: Vec<u8>,
    /// Per header: where its name starts, where its value starts (its name
    /// ends) and where its value ends, in `bytes`.
    headers: Vec<[u32; 3]>,
    /// Where the body starts in `bytes`.
    body: usize,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_wire()))
    }
}

/// A `.http` corpus file that is not a stream of HTTP/1.1 messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub struct FramingError {
    /// The line (1-based) where framing failed.
    pub line: usize,
    /// What was wrong.
    pub what: &'static str,
}

impl Message {
    /// A message with these header fields (in order) and this body.
    pub fn new<N: AsRef<[u8]>, V: AsRef<[u8]>>(headers: impl IntoIterator<Item = (N, V)>, body: &[u8]) -> Message {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        for (name, value) in headers {
            let start = bytes.len() as u32;
            bytes.extend_from_slice(name.as_ref());
            let mid = bytes.len() as u32;
            bytes.extend_from_slice(value.as_ref());
            spans.push([start, mid, bytes.len() as u32]);
        }
        let body_at = bytes.len();
        bytes.extend_from_slice(body);
        Message { bytes, headers: spans, body: body_at }
    }

    /// The header fields, `(name, value)`, in order.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.headers.iter().map(|&[a, b, c]| (&self.bytes[a as usize..b as usize], &self.bytes[b as usize..c as usize]))
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.body..]
    }

    /// Its size: header names, header values and body, without framing.
    /// The size limit and bytes/s count this.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True when it has no header and no body.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The message as HTTP/1.1 sends it (a `POST /` request, CRLF line
    /// ends, `Content-Length` added when the message has none), the form
    /// [`Message::parse_stream`] reads.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = b"POST / HTTP/1.1\r\n".to_vec();
        let mut length = false;
        for (name, value) in self.headers() {
            length |= name.eq_ignore_ascii_case(b"content-length");
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !length {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body().len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.body());
        out
    }

    /// The HTTP/1.1 messages of `stream` (see "Corpus files"), each with
    /// the line its header block starts on.
    pub fn parse_stream(stream: &[u8]) -> Result<Vec<(usize, Message)>, FramingError> {
        let mut out = Vec::new();
        let mut at = 0;
        let mut line = 1;
        loop {
            // Blank lines between messages.
            let blank = |text: &[u8]| text.iter().all(|&b| matches!(b, b' ' | b'\t' | b'\r'));
            while let Some(end) = line_end(stream, at).filter(|&end| blank(&stream[at..end])) {
                at = next_line(stream, end);
                line += 1;
            }
            if blank(&stream[at..]) {
                return Ok(out);
            }
            let first_line = line;
            let mut headers: Vec<(&[u8], &[u8])> = Vec::new();
            let mut first = true;
            loop {
                let Some(end) = line_end(stream, at) else {
                    return Err(FramingError { line, what: "the header block does not end with an empty line" });
                };
                let text = &stream[at..end];
                at = next_line(stream, end);
                line += 1;
                if text.is_empty() || text == b"\r" {
                    break;
                }
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if first && is_start_line(text) {
                    first = false;
                    continue;
                }
                first = false;
                if matches!(text.first(), Some(b' ' | b'\t')) {
                    return Err(FramingError { line: line - 1, what: "a folded header line (obsolete in HTTP/1.1)" });
                }
                let Some(colon) = text.iter().position(|&b| b == b':') else {
                    return Err(FramingError { line: line - 1, what: "a header line without `:`" });
                };
                let name = &text[..colon];
                if name.is_empty() || name.iter().any(|&b| b <= b' ' || b >= 0x7f) {
                    return Err(FramingError { line: line - 1, what: "a header name that is not an HTTP token" });
                }
                headers.push((name, trim(&text[colon + 1..])));
            }
            let length = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(b"content-length")).map(|(_, v)| *v);
            let body = match length {
                Some(v) => {
                    let n: usize = std::str::from_utf8(v)
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .ok_or(FramingError { line: first_line, what: "a Content-Length that is not a number" })?;
                    let body = stream
                        .get(at..at + n)
                        .ok_or(FramingError { line: first_line, what: "a body shorter than its Content-Length" })?;
                    at += n;
                    body
                }
                None => {
                    let body = &stream[at..];
                    at = stream.len();
                    body
                }
            };
            line += body.iter().filter(|&&b| b == b'\n').count();
            out.push((first_line, Message::new(headers, body)));
        }
    }
}

/// Where the line starting at `at` ends (its `\n`), or `None` at the end.
fn line_end(stream: &[u8], at: usize) -> Option<usize> {
    stream.get(at..)?.iter().position(|&b| b == b'\n').map(|i| at + i)
}

fn next_line(stream: &[u8], end: usize) -> usize {
    (end + 1).min(stream.len())
}

/// An HTTP/1.1 request or status line.
fn is_start_line(text: &[u8]) -> bool {
    text.starts_with(b"HTTP/") || text.windows(6).any(|w| w == b" HTTP/")
}

/// `value` without the spaces and tabs around it.
fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(value.len());
    let end = value.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |i| i + 1);
    &value[start..end]
}

/// Where a name or value of the event lies: in the message, or in the
/// reused buffer that decoded it.
#[derive(Clone, Copy, Debug)]
struct Place {
    decoded: bool,
    start: u32,
    end: u32,
}

impl Place {
    fn bytes<'a>(self, message: &'a [u8], decoded: &'a [u8]) -> &'a [u8] {
        let from = if self.decoded { decoded } else { message };
        &from[self.start as usize..self.end as usize]
    }
}

/// One header of the event, read and decoded (the first pass), judged in
/// the second.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slot {
    /// `Content-Type` (else a `ce-*` header).
    content_type: bool,
    /// The attribute name (after `ce-`, lower-cased).
    name: Place,
    /// The decoded value, or why it could not be decoded.
    value: Result<Place, DecodeError>,
}

/// Reads `message`'s headers into an event whose strings `S` places:
/// whether its body is to be checked as JSON (a JSON `Content-Type`, a
/// body that is not empty), and the event or the rule of the first header
/// (in message order) that breaks one, or of the end of the headers.
/// `decoded` and `slots` are buffers reused from message to message.
#[inline]
pub(crate) fn decode<'m, 'o, S, X>(
    message: &'m Message,
    decoded: &'m mut Vec<u8>,
    slots: &mut Vec<Slot>,
) -> (bool, Result<CloudEvent<'o, X>, DecodeError>)
where
    S: Strings<'m, 'o>,
    X: Extensions<'o>,
{
    // First pass: every header of the event read, its value decoded where
    // it needs it, into `decoded`, which is then frozen for the event to
    // borrow from.
    decoded.clear();
    slots.clear();
    let mut json = None;
    for &[a, b, c] in &message.headers {
        let name = &message.bytes[a as usize..b as usize];
        let raw = &message.bytes[b as usize..c as usize];
        if name.len() >= 3 && name[..3].eq_ignore_ascii_case(b"ce-") {
            let attribute = Place { decoded: false, start: a + 3, end: b };
            let name = if name[3..].iter().any(u8::is_ascii_uppercase) {
                let start = decoded.len() as u32;
                decoded.extend(name[3..].iter().map(u8::to_ascii_lowercase));
                Place { decoded: true, start, end: decoded.len() as u32 }
            } else {
                attribute
            };
            let value = value(raw, b as usize, decoded);
            slots.push(Slot { content_type: false, name, value });
        } else if name.eq_ignore_ascii_case(b"content-type") {
            let value = trim(raw);
            json.get_or_insert_with(|| is_json(value));
            let place = if value.iter().all(|&c| printable(c)) {
                let start = (value.as_ptr() as usize - message.bytes.as_ptr() as usize) as u32;
                Ok(Place { decoded: false, start, end: start + value.len() as u32 })
            } else {
                Err(DecodeError::BadHeaderValue)
            };
            slots.push(Slot { content_type: true, name: Place { decoded: false, start: 0, end: 0 }, value: place });
        }
    }
    let decoded: &'m [u8] = decoded;
    let json = json.unwrap_or(false) && !message.body().is_empty();
    (json, judge::<S, X>(message, decoded, slots))
}

/// The second pass: the headers in message order through [`Members`].
#[inline]
fn judge<'m, 'o, S, X>(
    message: &'m Message,
    decoded: &'m [u8],
    slots: &[Slot],
) -> Result<CloudEvent<'o, X>, DecodeError>
where
    S: Strings<'m, 'o>,
    X: Extensions<'o>,
{
    let text = |place: Place| -> Result<&'m str, DecodeError> {
        std::str::from_utf8(place.bytes(&message.bytes, decoded)).map_err(|_| DecodeError::InvalidUtf8)
    };
    // A value the first pass placed is UTF-8: printable ASCII as it stands
    // in the message, or percent-decoded and then checked (`percent_decode`).
    let placed = |place: Place| -> &'m str {
        let bytes = place.bytes(&message.bytes, decoded);
        debug_assert!(std::str::from_utf8(bytes).is_ok());
        // SAFETY: as above, every `Ok` place of a slot's value holds UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    };
    let mut event = CloudEvent::<'o, X>::default();
    let mut members = Members::new(&mut event);
    for slot in slots {
        if slot.content_type {
            members.attribute("datacontenttype")?;
            let value = placed(slot.value?);
            members.string(Attribute::Datacontenttype, Some(S::borrowed(value)))?;
            continue;
        }
        let Ok(name) = text(slot.name) else { return Err(DecodeError::BadAttributeName) };
        let attribute = Attribute::of(name);
        if matches!(attribute, Attribute::Data | Attribute::DataBase64 | Attribute::Datacontenttype) {
            return Err(DecodeError::BadAttributeName);
        }
        members.attribute(name)?;
        let value = placed(slot.value?);
        match attribute {
            Attribute::Specversion => members.specversion(Some(value))?,
            Attribute::Extension => {
                members.extension(S::borrowed(name), Some(ExtValue::String(S::borrowed(value))))?;
            }
            _ => members.string(attribute, Some(S::borrowed(value)))?,
        }
    }
    members.data(!message.body().is_empty());
    members.finish()?;
    Ok(event)
}

/// A byte a header value may hold as it is: printable ASCII, space, tab.
#[inline]
fn printable(b: u8) -> bool {
    (b' '..=b'~').contains(&b) || b == b'\t'
}

/// Whether `value` needs no decoding: printable ASCII, space and tab, no
/// `%` (sixteen bytes at a time, a fold the compiler vectorises).
#[inline]
fn plain(value: &[u8]) -> bool {
    let plain = |b: u8| ((b' '..=b'~').contains(&b) & (b != b'%')) | (b == b'\t');
    let mut chunks = value.chunks_exact(16);
    for chunk in &mut chunks {
        if !chunk.iter().fold(true, |ok, &b| ok & plain(b)) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| plain(b))
}

/// A `ce-*` header's value (at `offset` in the message): where it lies
/// once trimmed, unquoted and percent-decoded (see "The binding's rules").
#[inline]
fn value(raw: &[u8], offset: usize, decoded: &mut Vec<u8>) -> Result<Place, DecodeError> {
    let value = trim(raw);
    let start = offset + (value.as_ptr() as usize - raw.as_ptr() as usize);
    if value.first() != Some(&b'"') && plain(value) {
        return Ok(Place { decoded: false, start: start as u32, end: (start + value.len()) as u32 });
    }
    let from = decoded.len();
    let result = unquote(value, decoded).and_then(|()| percent_decode(decoded, from));
    if result.is_err() {
        decoded.truncate(from);
    }
    result.map(|end| Place { decoded: true, start: from as u32, end: end as u32 })
}

/// Appends `value` to `out`, unquoted if it is a quoted string.
fn unquote(value: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    if !value.iter().all(|&b| printable(b)) {
        return Err(DecodeError::BadHeaderValue);
    }
    let Some(inner) = value.strip_prefix(b"\"") else {
        out.extend_from_slice(value);
        return Ok(());
    };
    let mut bytes = inner.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.push(*bytes.next().ok_or(DecodeError::BadHeaderValue)?),
            // The closing quote ends the value.
            b'"' => return if bytes.next().is_none() { Ok(()) } else { Err(DecodeError::BadHeaderValue) },
            _ => out.push(b),
        }
    }
    Err(DecodeError::BadHeaderValue)
}

/// Percent-decodes `out[from..]` in place; returns where it now ends. The
/// result must be UTF-8.
fn percent_decode(out: &mut Vec<u8>, from: usize) -> Result<usize, DecodeError> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let (mut read, mut write) = (from, from);
    while read < out.len() {
        let b = out[read];
        if b == b'%' {
            let high = out.get(read + 1).copied().and_then(hex);
            let low = out.get(read + 2).copied().and_then(hex);
            let (Some(high), Some(low)) = (high, low) else { return Err(DecodeError::BadHeaderValue) };
            out[write] = high << 4 | low;
            read += 3;
        } else {
            out[write] = b;
            read += 1;
        }
        write += 1;
    }
    out.truncate(write);
    std::str::from_utf8(&out[from..]).map_err(|_| DecodeError::InvalidUtf8)?;
    Ok(write)
}

/// Whether a `Content-Type` value names JSON: `application/json`, or a
/// media type with the `+json` structured syntax suffix (RFC 6839),
/// parameters aside, in any case.
fn is_json(content_type: &[u8]) -> bool {
    let media = content_type.split(|&b| b == b';').next().map_or(&[][..], trim);
    let Some(slash) = media.iter().position(|&b| b == b'/') else { return false };
    let subtype = &media[slash + 1..];
    media.eq_ignore_ascii_case(b"application/json")
        || (subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

/// Percent-encodes `value` as the binding asks senders to: space, `"`, `%`
/// and every byte outside printable ASCII as `%XY` (upper-case hex).
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'"' && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The binary-mode message carrying the same event as the structured-mode
/// `document`: each attribute a `ce-*` header with its canonical string
/// (percent-encoded), `datacontenttype` as `Content-Type`, `data` as the
/// body (its JSON text) or `data_base64` decoded into it. `None` when the
/// document is not a JSON object, or `data_base64` is not base64 (the
/// caller converts valid events only). Members come in name order.
pub fn from_structured(document: &[u8]) -> Option<Message> {
    use base64::Engine;
    let serde_json::Value::Object(members) = serde_json::from_slice(document).ok()? else { return None };
    let mut headers = Vec::new();
    let mut body = Vec::new();
    for (name, value) in members {
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) if name == "data_base64" => {
                body = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
                continue;
            }
            data if name == "data" => {
                body = serde_json::to_vec(&data).expect("a JSON value serialises");
                continue;
            }
            serde_json::Value::String(s) if name == "datacontenttype" => {
                headers.push(("Content-Type".to_owned(), s));
                continue;
            }
            serde_json::Value::String(s) => percent_encode(&s),
            other => other.to_string(),
        };
        headers.push((format!("ce-{name}"), text));
    }
    Some(Message::new(headers, &body))
}

/// The structured-mode document carrying the same event as `message`
/// (valid, as decoded in binary mode): every attribute a string member,
/// the body as `data` when `Content-Type` is JSON, else as `data_base64`.
/// `None` when the message is not a valid event.
pub fn to_structured(message: &Message) -> Option<Vec<u8>> {
    use base64::Engine;
    use serde_json::{Value, json};
    let mut decoders = super::Decoders::default();
    let limits = super::Limits { max_bytes: usize::MAX };
    let event = decoders
        .decode_binary::<super::Own, super::MapExtensions<'static>>(super::Decoder::SerdeJson, message, limits)
        .ok()?;
    let mut members = serde_json::Map::new();
    members.insert("specversion".into(), json!("1.0"));
    members.insert("id".into(), json!(event.id));
    members.insert("source".into(), json!(event.source));
    members.insert("type".into(), json!(event.ty));
    for (name, value) in [
        ("datacontenttype", &event.datacontenttype),
        ("dataschema", &event.dataschema),
        ("subject", &event.subject),
        ("time", &event.time),
    ] {
        if let Some(v) = value {
            members.insert(name.into(), json!(v));
        }
    }
    for (name, value) in &event.extensions.0 {
        let ExtValue::String(s) = value else { unreachable!("binary-mode extensions are strings") };
        members.insert(name.to_string(), json!(s));
    }
    let json_body =
        message.headers().find(|(n, _)| n.eq_ignore_ascii_case(b"content-type")).is_some_and(|(_, v)| is_json(trim(v)));
    if !message.body().is_empty() {
        let data = if json_body { serde_json::from_slice(message.body()).ok()? } else { Value::Null };
        if json_body {
            members.insert("data".into(), data);
        } else {
            members
                .insert("data_base64".into(), json!(base64::engine::general_purpose::STANDARD.encode(message.body())));
        }
    }
    Some(serde_json::to_vec(&Value::Object(members)).expect("a JSON value serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_trimmed_unquoted_and_percent_decoded_once() {
        let mut buf = Vec::new();
        for (raw, want) in [
            (&b"  plain "[..], Ok("plain")),
            (b"Euro%20%E2%82%AC%20%F0%9F%98%80", Ok("Euro € 😀")),
            (b"%e2%82%ac", Ok("€")),
            (b"%2541", Ok("%41")),
            (b"\"a \\\"quoted\\\" %41\"", Ok("a \"quoted\" A")),
            (b"\"%\\41\"", Ok("A")),
            (b"a b", Ok("a b")),
            (b"", Ok("")),
            (b"%C0%A0", Err(DecodeError::InvalidUtf8)),
            (b"%FF", Err(DecodeError::InvalidUtf8)),
            (b"%4", Err(DecodeError::BadHeaderValue)),
            (b"%zz", Err(DecodeError::BadHeaderValue)),
            (b"caf\xc3\xa9", Err(DecodeError::BadHeaderValue)),
            (b"a\x01", Err(DecodeError::BadHeaderValue)),
            (b"\"open", Err(DecodeError::BadHeaderValue)),
            (b"\"a\"b", Err(DecodeError::BadHeaderValue)),
            (b"\"a\\", Err(DecodeError::BadHeaderValue)),
        ] {
            buf.clear();
            let got = value(raw, 0, &mut buf)
                .map(|p| String::from_utf8(p.bytes(raw, &buf).to_vec()).expect("decoded values are UTF-8"));
            assert_eq!(got.as_deref().map_err(|e| *e), want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn percent_encoding_round_trips_through_decoding() {
        for s in ["Euro € 😀", "100%", "\"quoted\"", "a\tb", "plain-ascii_~"] {
            let encoded = percent_encode(s);
            assert!(encoded.bytes().all(|b| (b'!'..=b'~').contains(&b) && b != b'"'), "{encoded}");
            let mut buf = Vec::new();
            let place = value(encoded.as_bytes(), 0, &mut buf).expect("decodes");
            assert_eq!(place.bytes(encoded.as_bytes(), &buf), s.as_bytes());
        }
        assert_eq!(percent_encode("Euro € 😀"), "Euro%20%E2%82%AC%20%F0%9F%98%80", "the spec's example");
    }

    #[test]
    fn json_content_types() {
        for (ct, want) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/cloudevents+json", true),
            ("text/vnd.x+JSON ;q=1", true),
            ("application/octet-stream", false),
            ("text/plain", false),
            ("+json", false),
            ("application/+json", false),
            ("application/jsonx", false),
            ("", false),
        ] {
            assert_eq!(is_json(ct.as_bytes()), want, "{ct}");
        }
    }

    #[test]
    fn streams_frame_messages_by_content_length() {
        let a = Message::new([("ce-id", "1"), ("Content-Type", "application/json")], b"{\"a\":1}");
        let b = Message::new([("ce-id", "2")], b"last body\nwith lines\n");
        let mut stream = a.to_wire();
        stream.extend_from_slice(b"\r\n\n");
        stream.extend_from_slice(b"HTTP/1.1 200 OK\nce-id: 2\n\nlast body\nwith lines\n");
        let parsed = Message::parse_stream(&stream).expect("frames");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].1.body(), a.body());
        assert_eq!(parsed[0].1.headers().take(2).collect::<Vec<_>>(), a.headers().collect::<Vec<_>>());
        assert_eq!((parsed[1].0, &parsed[1].1), (8, &b), "the second starts on line 8, its body runs to the end");
        for (bad, line) in [
            (&b"ce-id: 1\n"[..], 2),
            (b"ce-id 1\n\n", 1),
            (b"ce-id: 1\n folded\n\n", 2),
            (b"Content-Length: 10\n\nshort", 1),
            (b"Content-Length: x\n\n", 1),
        ] {
            assert_eq!(Message::parse_stream(bad).map(|_| ()).map_err(|e| e.line), Err(line), "{bad:?}");
        }
    }
}
