//! The user's regions of a generated file: half_orm's marker lines, and the
//! text between them that regeneration must keep byte for byte.
//!
//! A generated file is a sequence of generated text and marker lines. The text
//! between a `BEGIN` marker and the `END` marker after it is the user's, and
//! so is everything after the last marker. The rest is rewritten.

use std::path::Path;

use crate::error::{Error, Result};

/// half_orm's opening marker (the user's code goes below it).
pub const BEGIN: &str = "#>>> PLACE YOUR CODE BELOW THIS LINE. DO NOT REMOVE THIS LINE!";
/// half_orm's closing marker (the user's code goes above it).
pub const END: &str = "#<<< PLACE YOUR CODE ABOVE THIS LINE. DO NOT REMOVE THIS LINE!";
/// The misspelled opening marker of old half_orm versions, still accepted.
const BEGIN_OLD: &str = "#>>> PLACE YOUR CODE BELLOW THIS LINE. DO NOT REMOVE THIS LINE!";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Begin,
    End,
}

impl Marker {
    fn matches(self, line: &str) -> bool {
        let line = line.trim();
        match self {
            Marker::Begin => line == BEGIN || line == BEGIN_OLD,
            Marker::End => line == END,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Marker::Begin => BEGIN,
            Marker::End => END,
        }
    }
}

/// The user's regions of `text`, whose marker lines must appear in the order
/// of `layout` (other text in between). Returns one string per
/// `BEGIN`…`END` pair, then the text after the last marker. A marker line
/// inside a user's region is part of that region. Missing markers are an
/// error that names `path` and the line where the marker was expected after.
pub fn user_regions(text: &str, layout: &[Marker], path: &Path) -> Result<Vec<String>> {
    // (start, end) byte offsets of each marker line found, newline included.
    let mut found: Vec<(usize, usize)> = Vec::with_capacity(layout.len());
    let mut offset = 0;
    let mut line_no = 0;
    let mut last_line = 0;
    for line in text.split_inclusive('\n') {
        line_no += 1;
        let start = offset;
        offset += line.len();
        if found.len() < layout.len() && layout[found.len()].matches(line) {
            found.push((start, offset));
            last_line = line_no;
        }
    }
    if found.len() < layout.len() {
        let missing = layout[found.len()];
        let after = if found.is_empty() {
            String::new()
        } else {
            format!(" after the marker on line {last_line}")
        };
        return Err(Error::new(format!(
            "{}: the line `{}` is missing{after}; git-hop cannot tell your code from the generated code",
            path.display(),
            missing.text()
        ))
        .hint(format!(
            "put the marker line back (a fresh module shows where), or move {} away so that git-hop generates it anew",
            path.display()
        )));
    }
    let mut regions = Vec::new();
    for (k, marker) in layout.iter().enumerate() {
        if *marker == Marker::Begin && layout.get(k + 1) == Some(&Marker::End) {
            regions.push(text[found[k].1..found[k + 1].0].to_string());
        }
    }
    let tail_start = found.last().map(|f| f.1).unwrap_or(0);
    regions.push(text[tail_start..].to_string());
    Ok(regions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Marker::{Begin, End};

    const LAYOUT: [Marker; 4] = [Begin, End, Begin, End];

    fn file(r1: &str, r2: &str, tail: &str) -> String {
        format!(
            "# header\nimport x\n{BEGIN}\n{r1}{END}\n\nclass A:\n    \"\"\"doc\"\"\"\n    {BEGIN}\n{r2}    {END}\n{tail}"
        )
    }

    #[test]
    fn regions_come_back_byte_for_byte() {
        let r1 = "import os\r\n\n# mine {}\n";
        let r2 = "    Fkeys = {'a': 'b'}\n    # a marker-like text: #>>> PLACE\n";
        let tail = "\n    @classmethod\n    def create(cls, name):\n        return cls(name=name).ho_insert()\n";
        let text = file(r1, r2, tail);
        let got = user_regions(&text, &LAYOUT, Path::new("m.py")).unwrap();
        assert_eq!(got, vec![r1.to_string(), r2.to_string(), tail.to_string()]);
        // Empty regions and a file ending right after the last marker.
        let text = format!("{BEGIN}\n{END}\n{BEGIN}\n{END}");
        let got = user_regions(&text, &LAYOUT, Path::new("m.py")).unwrap();
        assert_eq!(got, vec!["", "", ""]);
    }

    #[test]
    fn old_misspelled_marker_is_accepted() {
        let text = format!("x\n{BEGIN_OLD}\nmine\n");
        let got = user_regions(&text, &[Begin], Path::new("i.py")).unwrap();
        assert_eq!(got, vec!["mine\n"]);
    }

    #[test]
    fn missing_marker_is_an_error_naming_file_and_line() {
        let text = format!("a\n{BEGIN}\nb\n{END}\nc\n{BEGIN}\nd\n");
        let err = user_regions(&text, &LAYOUT, Path::new("pkg/public/users.py")).unwrap_err();
        assert!(
            err.message
                .starts_with("pkg/public/users.py: the line `#<<<"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("after the marker on line 6"),
            "{}",
            err.message
        );
        assert!(err.hint.is_some());
        let err = user_regions("print(1)\n", &LAYOUT, Path::new("h.py")).unwrap_err();
        assert!(
            err.message.contains("`#>>> PLACE YOUR CODE BELOW"),
            "{}",
            err.message
        );
    }
}
