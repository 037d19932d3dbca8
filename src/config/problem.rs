//! Configuration problems and where they are: [`Problem`] (one finding with its source,
//! line, column and key path), [`ConfigErrors`] (all findings of one load), and the
//! internal position types ([`Pos`], [`At`], [`Locator`]) the loader attaches to every
//! value so that a later check can still point at the text that caused it.

use std::fmt;
use std::rc::Rc;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file name, or the command-line flag (`--origin`) in quick mode.
    pub source: String,
    /// 1-based; 0 when there is no location (an unreadable file, a flag).
    pub line: usize,
    /// 1-based, in characters; 0 when there is no location.
    pub column: usize,
    /// Key path such as `distribution[0].behavior[1].path_pattern`; "" for the whole source.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    /// `{source}:{line}:{column}: {path}: {message}`; the location is left out when there is
    /// none, and the path when it is empty, so a flag reads `--origin: …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found while loading a configuration, in source order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// Sorted by position (stable, so problems at one spot keep their order), duplicates
    /// dropped: a reader fixes a file top to bottom.
    pub(crate) fn from_problems(mut problems: Vec<Problem>) -> Self {
        problems.sort_by(|a, b| (&a.source, a.line, a.column).cmp(&(&b.source, b.line, b.column)));
        problems.dedup();
        ConfigErrors { problems }
    }
}

/// A position in a source. Cheap to clone: the source name is shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pos {
    pub source: Rc<str>,
    pub line: usize,
    pub column: usize,
}

impl Default for Pos {
    fn default() -> Self {
        Pos::flag("")
    }
}

impl Pos {
    /// A source without line structure (a command-line flag).
    pub fn flag(source: &str) -> Pos {
        Pos {
            source: source.into(),
            line: 0,
            column: 0,
        }
    }
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct At<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> At<T> {
    pub fn new(value: T, pos: Pos) -> Self {
        At { value, pos }
    }
}

/// Collects problems; every check reports here and goes on.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub list: Vec<Problem>,
}

impl Problems {
    pub fn add(&mut self, pos: &Pos, path: &str, message: impl Into<String>) {
        self.list.push(Problem {
            source: pos.source.to_string(),
            line: pos.line,
            column: pos.column,
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn into_errors(self) -> ConfigErrors {
        ConfigErrors::from_problems(self.list)
    }
}

/// Turns byte offsets of one text into 1-based line and column (columns count characters).
pub(crate) struct Locator<'a> {
    source: Rc<str>,
    text: &'a str,
    line_starts: Vec<usize>,
    /// Positions carry no line: the text was generated (an API body turned into TOML),
    /// and its lines mean nothing to whoever wrote the body.
    flat: bool,
}

impl<'a> Locator<'a> {
    pub fn new(source: &str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Locator {
            source: source.into(),
            text,
            line_starts,
            flat: false,
        }
    }

    /// A locator whose positions name only the source.
    pub fn flat(source: &str, text: &'a str) -> Self {
        Locator {
            flat: true,
            ..Locator::new(source, text)
        }
    }

    pub fn pos(&self, offset: usize) -> Pos {
        if self.flat {
            return Pos {
                source: self.source.clone(),
                line: 0,
                column: 0,
            };
        }
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(0);
        // Offsets come from the parser and fall on char boundaries; bytes are the fallback.
        let column = match self.text.get(start..offset) {
            Some(s) => s.chars().count(),
            None => offset - start,
        } + 1;
        Pos {
            source: self.source.clone(),
            line,
            column,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let l = Locator::new("f", "ab\ncdé\n\nx");
        assert_eq!((l.pos(0).line, l.pos(0).column), (1, 1));
        assert_eq!((l.pos(2).line, l.pos(2).column), (1, 3));
        assert_eq!((l.pos(3).line, l.pos(3).column), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!((l.pos(7).line, l.pos(7).column), (2, 4));
        assert_eq!((l.pos(8).line, l.pos(8).column), (3, 1));
        assert_eq!((l.pos(9).line, l.pos(9).column), (4, 1));
        assert_eq!((l.pos(99).line, l.pos(99).column), (4, 2));
    }

    #[test]
    fn problems_display_one_per_line() {
        let mut p = Problems::default();
        p.add(
            &Pos {
                source: "b.toml".into(),
                line: 3,
                column: 7,
            },
            "edge.listen",
            "bad",
        );
        p.add(
            &Pos::flag("--origin"),
            "distribution[0].origin[0].url",
            "worse",
        );
        p.add(
            &Pos {
                source: "b.toml".into(),
                line: 1,
                column: 1,
            },
            "",
            "first",
        );
        let e = p.into_errors();
        assert_eq!(
            e.to_string(),
            "--origin: distribution[0].origin[0].url: worse\n\
             b.toml:1:1: first\n\
             b.toml:3:7: edge.listen: bad"
        );
    }
}
