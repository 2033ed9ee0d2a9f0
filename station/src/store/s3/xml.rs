//! The few pieces of S3's XML answers the store reads (upload ids, parts, error codes,
//! lock settings): text of named elements, without a general XML parser. Answers are
//! size-limited before they get here; entities are decoded, anything else is kept as is.

/// The bodies of every `<tag>…</tag>` (or `<tag attr…>…</tag>`) in `doc`, in order.
pub fn blocks<'a>(doc: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        // `<Part>` must not match `<PartNumber>`.
        let Some(end_of_open) = after.find('>') else {
            break;
        };
        let attrs = &after[..end_of_open];
        if !(attrs.is_empty() || attrs == "/" || attrs.starts_with(char::is_whitespace)) {
            rest = after;
            continue;
        }
        if attrs.ends_with('/') {
            out.push("");
            rest = &after[end_of_open + 1..];
            continue;
        }
        let body = &after[end_of_open + 1..];
        let Some(end) = body.find(&close) else { break };
        out.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    out
}

/// The decoded text of the first `<tag>` in `doc`.
pub fn text(doc: &str, tag: &str) -> Option<String> {
    blocks(doc, tag).first().map(|t| unescape(t))
}

/// Decodes the five predefined entities (S3 quotes ETags as `&quot;`).
pub fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Encodes text for an element body.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_elements_are_found_without_matching_longer_names() {
        let doc = r#"<?xml version="1.0"?><ListPartsResult><Part><PartNumber>1</PartNumber><ETag>&quot;ab&quot;</ETag><Size>5</Size></Part><Part><PartNumber>2</PartNumber><ETag>"cd"</ETag><Size>3</Size></Part><IsTruncated>false</IsTruncated></ListPartsResult>"#;
        let parts = blocks(doc, "Part");
        assert_eq!(parts.len(), 2);
        assert_eq!(text(parts[0], "ETag").as_deref(), Some("\"ab\""));
        assert_eq!(text(parts[1], "PartNumber").as_deref(), Some("2"));
        assert_eq!(text(doc, "IsTruncated").as_deref(), Some("false"));
        assert_eq!(text(doc, "Missing"), None);
        assert_eq!(blocks("<A/><A x=\"1\">t</A>", "A"), vec!["", "t"]);
        assert!(
            blocks("<Part><PartNumber>1", "Part").is_empty(),
            "unterminated"
        );
        assert_eq!(unescape(&escape("a<&>\"b")), "a<&>\"b");
    }
}
