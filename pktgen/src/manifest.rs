//! The manifest: one JSON line per image sent, which the receiver matches results against.

use crate::error::Context;
use crate::{bail, Result};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;

/// One image as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Model id.
    pub model: u8,
    /// Image id.
    pub image: u32,
    /// Source address and port of the image's flow.
    pub src: SocketAddr,
    /// CRC-32 of the tensor.
    pub crc32: u32,
    /// Fragments in the image.
    pub fragments: u16,
    /// Whether every fragment was delivered intact (none lost, damaged or withheld).
    pub intact: bool,
    /// Sender timestamp (ns since the Unix epoch) carried in the descriptor.
    pub sender_timestamp: u64,
    /// The input the tensor came from (file name as given, or `synthetic#k`), if known: the
    /// key that ties an image to the expected class of its tensor (crate::expected).
    pub input: Option<String>,
    /// The class the model should answer first (top-1), if known.
    pub expected_class: Option<u32>,
}

impl Entry {
    /// The JSON line, without newline, fields in a fixed order; `input` and
    /// `expected_class` only when known, after the others.
    pub fn to_json(&self) -> String {
        let mut s = format!(
            "{{\"model\":{},\"image\":{},\"src\":\"{}\",\"crc32\":{},\"fragments\":{},\"intact\":{},\"sender_timestamp\":{}",
            self.model, self.image, self.src, self.crc32, self.fragments, self.intact, self.sender_timestamp
        );
        if let Some(input) = &self.input {
            s.push_str(",\"input\":");
            s.push_str(&Value::from(input.as_str()).to_string());
        }
        if let Some(c) = self.expected_class {
            s.push_str(&format!(",\"expected_class\":{c}"));
        }
        s.push('}');
        s
    }

    /// Parses one JSON line.
    pub fn from_json(line: &str) -> Result<Entry> {
        let v: Value = serde_json::from_str(line).context("bad JSON")?;
        let num = |k: &str| -> Result<u64> {
            match v.get(k).and_then(Value::as_u64) {
                Some(n) => Ok(n),
                None => bail!("missing or non-integer field {k:?}"),
            }
        };
        let int = |k: &str, max: u64| -> Result<u64> {
            let n = num(k)?;
            if n > max {
                bail!("field {k:?} out of range: {n}");
            }
            Ok(n)
        };
        let src = match v.get("src").and_then(Value::as_str).map(str::parse) {
            Some(Ok(a)) => a,
            _ => bail!("missing or bad field \"src\" (expected \"ip:port\")"),
        };
        let intact = match v.get("intact").and_then(Value::as_bool) {
            Some(b) => b,
            None => bail!("missing or non-boolean field \"intact\""),
        };
        // Optional fields: absent or null is "not known", any other type is an error.
        let input = match v.get("input") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => bail!("field \"input\" is not a string"),
        };
        let expected_class = match v.get("expected_class") {
            None | Some(Value::Null) => None,
            Some(_) => Some(int("expected_class", u32::MAX as u64)? as u32),
        };
        Ok(Entry {
            model: int("model", u8::MAX as u64)? as u8,
            image: int("image", u32::MAX as u64)? as u32,
            src,
            crc32: int("crc32", u32::MAX as u64)? as u32,
            fragments: int("fragments", u16::MAX as u64)? as u16,
            intact,
            sender_timestamp: num("sender_timestamp")?,
            input,
            expected_class,
        })
    }
}

/// Reads a manifest file (blank lines are skipped).
pub fn read(path: &Path) -> Result<Vec<Entry>> {
    let text = std::fs::read_to_string(path).context(path.display())?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            Entry::from_json(l).map_err(|e| e.context(format!("{}:{}", path.display(), i + 1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let e = Entry {
            model: 3,
            image: 4_000_000_000,
            src: "[fd00::1]:40000".parse().unwrap(),
            crc32: 0xdead_beef,
            fragments: 588,
            intact: false,
            sender_timestamp: 1_700_000_000_123_456_789,
            input: None,
            expected_class: None,
        };
        let line = e.to_json();
        assert_eq!(Entry::from_json(&line).unwrap(), e);
        assert!(line.starts_with("{\"model\":3,\"image\":4000000000,\"src\":\"[fd00::1]:40000\""));
        assert!(line.ends_with("\"sender_timestamp\":1700000000123456789}"));
        assert!(Entry::from_json("{\"model\":300}").is_err());
        assert!(Entry::from_json("not json").is_err());
        let known = Entry {
            input: Some("cats/\"a\".npy".into()),
            expected_class: Some(281),
            ..e
        };
        let line = known.to_json();
        assert!(
            line.ends_with(",\"input\":\"cats/\\\"a\\\".npy\",\"expected_class\":281}"),
            "{line}"
        );
        assert_eq!(Entry::from_json(&line).unwrap(), known);
    }

    #[test]
    fn optional_fields_are_checked() {
        let base = "{\"model\":1,\"image\":2,\"src\":\"10.0.0.1:40000\",\"crc32\":3,\"fragments\":4,\"intact\":true,\"sender_timestamp\":5";
        let e = Entry::from_json(&format!("{base},\"expected_class\":null}}")).unwrap();
        assert_eq!((e.input, e.expected_class), (None, None));
        let bad = Entry::from_json(&format!("{base},\"expected_class\":-1}}")).unwrap_err();
        assert!(bad.0.contains("expected_class"), "{bad}");
        assert!(Entry::from_json(&format!("{base},\"input\":7}}")).is_err());
    }
}
