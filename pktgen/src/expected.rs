//! Expected classes (`recv --expected FILE`): a CSV that says which class each image's
//! model should answer first, filled into the manifest's `expected_class`.
//!
//! The first line is a header naming the columns, in any order: `model` and `class`, and
//! either `image` (the image id, optionally with `src`, the flow's `ip:port`, empty for
//! every flow) or `input`
//! (the input as the manifest names it: the file name as given to `send`, or
//! `synthetic#k`). Rows keyed by `input` suit files made by running `netml infer` on each
//! input, since every image of a tensor has the same answer; rows keyed by `image` suit
//! answers known per image. Fields are separated by commas and trimmed; there is no
//! quoting, so no field can contain a comma. Blank lines are skipped.

use crate::error::Context;
use crate::manifest::Entry;
use crate::{bail, Result};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;

/// What a row applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// Images with this id, of one flow when `src` is given, else of every flow.
    Image {
        model: u8,
        image: u32,
        src: Option<SocketAddr>,
    },
    /// Every image of this input.
    Input { model: u8, input: String },
}

/// Expected classes read from a CSV file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expected {
    /// Class and 1-based line number per key.
    rows: HashMap<Key, (u32, usize)>,
}

/// What [`Expected::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Manifest entries that got an expected class.
    pub filled: usize,
    /// Rows that matched no manifest entry.
    pub unused_rows: usize,
}

/// Column positions, from the header.
struct Columns {
    model: usize,
    class: usize,
    image: Option<usize>,
    src: Option<usize>,
    input: Option<usize>,
    count: usize,
}

impl Columns {
    fn from_header(line: &str) -> Result<Columns> {
        let names: Vec<&str> = line.split(',').map(str::trim).collect();
        let find = |name: &str| names.iter().position(|n| *n == name);
        for (i, n) in names.iter().enumerate() {
            if !["model", "image", "src", "input", "class"].contains(n) {
                bail!("unknown column {n:?} (expected model, image, src, input, class)");
            }
            if find(n) != Some(i) {
                bail!("column {n:?} given twice");
            }
        }
        let (Some(model), Some(class)) = (find("model"), find("class")) else {
            bail!("the header must name the columns model and class (and image or input)");
        };
        let c = Columns {
            model,
            class,
            image: find("image"),
            src: find("src"),
            input: find("input"),
            count: names.len(),
        };
        match (c.image, c.input) {
            (Some(_), Some(_)) => bail!("give either an image or an input column, not both"),
            (None, None) => bail!("the header must name an image or an input column"),
            (None, Some(_)) if c.src.is_some() => bail!("column src goes with image, not input"),
            _ => Ok(c),
        }
    }

    fn row(&self, line: &str) -> Result<(Key, u32)> {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != self.count {
            bail!("expected {} fields, got {}", self.count, f.len());
        }
        let model = parse::<u8>(f[self.model], "model")?;
        let class = parse::<u32>(f[self.class], "class")?;
        let key = match (self.image, self.input) {
            (Some(i), _) => Key::Image {
                model,
                image: parse(f[i], "image")?,
                // An empty src: every flow.
                src: match self.src.map(|s| f[s]) {
                    None | Some("") => None,
                    Some(a) => Some(parse(a, "src")?),
                },
            },
            (None, Some(i)) if !f[i].is_empty() => Key::Input {
                model,
                input: f[i].to_string(),
            },
            _ => bail!("empty input"),
        };
        Ok((key, class))
    }
}

fn parse<T: std::str::FromStr>(field: &str, name: &str) -> Result<T> {
    match field.parse() {
        Ok(v) => Ok(v),
        Err(_) => bail!("bad {name} {field:?}"),
    }
}

impl Expected {
    /// Parses the CSV text; errors name the 1-based line.
    pub fn parse(text: &str) -> Result<Expected> {
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((n, header)) = lines.next() else {
            bail!("empty file: expected a header line such as \"model,image,class\"");
        };
        let cols = Columns::from_header(header).map_err(|e| e.context(format!("line {n}")))?;
        let mut rows: HashMap<Key, (u32, usize)> = HashMap::new();
        for (n, line) in lines {
            let (key, class) = cols.row(line).map_err(|e| e.context(format!("line {n}")))?;
            if let Some(&(before, at)) = rows.get(&key) {
                if before != class {
                    bail!(
                        "line {n}: class {class}, but line {at} says {before} for the same image"
                    );
                }
                continue;
            }
            rows.insert(key, (class, n));
        }
        Ok(Expected { rows })
    }

    /// Reads and parses a CSV file; errors name the file and line.
    pub fn read(path: &Path) -> Result<Expected> {
        let text = std::fs::read_to_string(path).context(path.display())?;
        Expected::parse(&text).map_err(|e| e.context(path.display()))
    }

    /// Rows read.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the file had no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Sets `expected_class` of every manifest entry a row matches (replacing a value the
    /// manifest had). The most specific row wins: (model, image, src), then (model, image),
    /// then (model, input).
    pub fn apply(&self, manifest: &mut [Entry]) -> Applied {
        let mut used_lines = HashSet::new();
        let mut filled = 0;
        for e in manifest.iter_mut() {
            let (model, image) = (e.model, e.image);
            let candidates = [
                Some(Key::Image {
                    model,
                    image,
                    src: Some(e.src),
                }),
                Some(Key::Image {
                    model,
                    image,
                    src: None,
                }),
                e.input.clone().map(|input| Key::Input { model, input }),
            ];
            let hit = candidates
                .into_iter()
                .flatten()
                .find_map(|k| self.rows.get(&k).copied());
            if let Some((class, line)) = hit {
                e.expected_class = Some(class);
                used_lines.insert(line);
                filled += 1;
            }
        }
        Applied {
            filled,
            unused_rows: self.rows.len() - used_lines.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(model: u8, image: u32, src: &str, input: &str) -> Entry {
        Entry {
            model,
            image,
            src: src.parse().unwrap(),
            crc32: 0,
            fragments: 1,
            intact: true,
            sender_timestamp: 0,
            input: Some(input.into()),
            expected_class: None,
        }
    }

    fn err(text: &str) -> String {
        Expected::parse(text).unwrap_err().0
    }

    #[test]
    fn by_image_with_and_without_src() {
        let csv = "model,image,class\n1,7,281\n\n 1 , 8 , 5 \n";
        let x = Expected::parse(csv).unwrap();
        assert_eq!(x.len(), 2);
        let mut m = vec![
            entry(1, 7, "10.0.0.1:40000", "a.npy"),
            entry(1, 7, "10.0.0.1:40001", "b.npy"),
            entry(2, 7, "10.0.0.1:40000", "a.npy"),
        ];
        let applied = x.apply(&mut m);
        assert_eq!(
            applied,
            Applied {
                filled: 2,
                unused_rows: 1
            }
        );
        let got: Vec<_> = m.iter().map(|e| e.expected_class).collect();
        assert_eq!(got, [Some(281), Some(281), None]);

        // A row for one flow beats a row for every flow; columns come in any order.
        let csv = "image,model,class,src\n7,1,3,\n7,1,9,10.0.0.1:40001\n";
        let mut m = vec![
            entry(1, 7, "10.0.0.1:40000", "a.npy"),
            entry(1, 7, "10.0.0.1:40001", "b.npy"),
        ];
        let applied = Expected::parse(csv).unwrap().apply(&mut m);
        assert_eq!((applied.filled, applied.unused_rows), (2, 0));
        let got: Vec<_> = m.iter().map(|e| e.expected_class).collect();
        assert_eq!(got, [Some(3), Some(9)]);
    }

    #[test]
    fn by_input() {
        let x = Expected::parse("model,input,class\n1,cat.jpg,281\n1,synthetic#0,4\n").unwrap();
        let mut m = vec![
            entry(1, 0, "10.0.0.1:40000", "cat.jpg"),
            entry(1, 1, "10.0.0.1:40000", "dog.png"),
            entry(1, 2, "10.0.0.1:40000", "cat.jpg"),
        ];
        assert_eq!(x.apply(&mut m).filled, 2);
        assert_eq!(m[2].expected_class, Some(281));
        assert_eq!(m[1].expected_class, None);
    }

    #[test]
    fn bad_lines_name_their_line() {
        assert_eq!(
            err("model,image,class\n1,7,3\n1,x,3\n"),
            "line 3: bad image \"x\""
        );
        assert_eq!(
            err("model,image,class\n300,7,3\n"),
            "line 2: bad model \"300\""
        );
        assert_eq!(
            err("\nmodel,image,class\n1,7\n"),
            "line 3: expected 3 fields, got 2"
        );
        assert_eq!(
            err("model,image,class\n1,7,3\n1,7,4\n"),
            "line 3: class 4, but line 2 says 3 for the same image"
        );
        assert_eq!(
            err("model,image,klass\n"),
            "line 1: unknown column \"klass\" (expected model, image, src, input, class)"
        );
        assert!(err("model,class\n").starts_with("line 1: the header must name an image"));
        assert!(err("model,image,input,class\n").contains("not both"));
        assert!(err("model,image,model,class\n").contains("given twice"));
        assert!(err("model,input,src,class\n").contains("src goes with image"));
        assert!(err("1,7,3\n").starts_with("line 1: unknown column"));
        assert!(err("").starts_with("empty file"));
        assert_eq!(err("model,input,class\n1, ,3\n"), "line 2: empty input");
        assert_eq!(err("model,image,class\n1,7,\n"), "line 2: bad class \"\"");
        assert_eq!(
            err("model,image,src,class\n1,7,10.0.0.1,3\n"),
            "line 2: bad src \"10.0.0.1\""
        );
        // The same row twice is harmless.
        assert!(Expected::parse("model,image,class\n1,7,3\n1,7,3\n").is_ok());
    }

    #[test]
    fn read_names_the_file() {
        let e = Expected::read(Path::new("/nonexistent/x.csv")).unwrap_err();
        assert!(e.0.starts_with("/nonexistent/x.csv: "), "{e}");
    }
}
