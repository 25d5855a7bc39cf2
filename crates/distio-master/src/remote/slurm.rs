//! Slurm node lists (`SLURM_JOB_NODELIST`), expanded to host names in Rust, without
//! calling `scontrol show hostnames`: a master started by a batch script finds its hosts
//! with no Slurm tools on its `PATH`.

use std::fmt;

use crate::MasterError;

/// The most host names one node list may expand to. Slurm's own clusters stay far below;
/// a list beyond is refused instead of allocating without bound.
pub const MAX_SLURM_HOSTS: usize = 65_536;

/// What is wrong with a Slurm node list (the reason inside [`MasterError::SlurmNodelist`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodelistProblem {
    /// The list is empty.
    Empty,
    /// A comma-separated entry is empty (`a,,b`).
    EmptyEntry,
    /// A `[` without its `]`.
    UnclosedBracket,
    /// A `]` without its `[`, or a bracket inside a bracket.
    StrayBracket,
    /// A bracket item that is not `N` or `N-M` with `N <= M` (decimal digits).
    BadRange(String),
    /// The list expands to more than [`MAX_SLURM_HOSTS`] names.
    TooManyHosts,
}

impl fmt::Display for NodelistProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("it is empty"),
            Self::EmptyEntry => f.write_str("it has an empty entry between commas"),
            Self::UnclosedBracket => f.write_str("a `[` is never closed"),
            Self::StrayBracket => f.write_str("a bracket is misplaced (`]` before `[`, or nested)"),
            Self::BadRange(item) => write!(
                f,
                "`{item}` in a bracket is neither a number nor a range `LOW-HIGH` with LOW <= HIGH"
            ),
            Self::TooManyHosts => write!(f, "it names more than {MAX_SLURM_HOSTS} hosts"),
        }
    }
}

/// Expands a Slurm node list (the value of `SLURM_JOB_NODELIST` or `SLURM_NODELIST`) into
/// host names, in order.
///
/// Handles comma lists, bracket groups of numbers and ranges keeping the zero padding of the
/// range's first number (`node[08-10]` → `node08`, `node09`, `node10`), several groups in one
/// name (`rack[1-2]-node[01-02]`, every combination, the last group varying fastest) and text
/// after a group. Duplicates are kept, as Slurm writes no duplicates. A list naming more than
/// [`MAX_SLURM_HOSTS`] hosts is refused before anything is allocated for it.
///
/// ```
/// use distio_master::expand_slurm_nodelist;
/// assert_eq!(
///     expand_slurm_nodelist("node[01-03,07],gpu3")?,
///     ["node01", "node02", "node03", "node07", "gpu3"]
/// );
/// assert_eq!(
///     expand_slurm_nodelist("rack[1-2]-n[1-2]")?,
///     ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]
/// );
/// assert!(expand_slurm_nodelist("node[1-99999999]").is_err());
/// # Ok::<(), distio_master::MasterError>(())
/// ```
pub fn expand_slurm_nodelist(list: &str) -> Result<Vec<String>, MasterError> {
    let fail = |problem| MasterError::SlurmNodelist {
        list: shorten(list),
        problem,
    };
    let trimmed = list.trim();
    if trimmed.is_empty() {
        return Err(fail(NodelistProblem::Empty));
    }
    let entries = split_top_level(trimmed).map_err(fail)?;
    let mut parsed = Vec::with_capacity(entries.len());
    let mut total: usize = 0;
    for entry in entries {
        let pattern = Pattern::parse(entry).map_err(fail)?;
        total = total
            .checked_add(
                pattern
                    .count()
                    .ok_or_else(|| fail(NodelistProblem::TooManyHosts))?,
            )
            .filter(|&n| n <= MAX_SLURM_HOSTS)
            .ok_or_else(|| fail(NodelistProblem::TooManyHosts))?;
        parsed.push(pattern);
    }
    let mut hosts = Vec::with_capacity(total);
    for pattern in &parsed {
        pattern.expand_into(&mut hosts);
    }
    Ok(hosts)
}

/// At most 200 characters of a list, for the error message.
fn shorten(list: &str) -> String {
    const SHOWN: usize = 200;
    match list.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &list[..cut]),
        None => list.to_owned(),
    }
}

/// The list's comma-separated entries, ignoring commas inside brackets.
fn split_top_level(list: &str) -> Result<Vec<&str>, NodelistProblem> {
    let mut entries = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in list.char_indices() {
        match c {
            '[' if depth == 0 => depth = 1,
            ']' if depth == 1 => depth = 0,
            '[' | ']' => return Err(NodelistProblem::StrayBracket),
            ',' if depth == 0 => {
                entries.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(NodelistProblem::UnclosedBracket);
    }
    entries.push(&list[start..]);
    if entries.iter().any(|entry| entry.trim().is_empty()) {
        return Err(NodelistProblem::EmptyEntry);
    }
    Ok(entries)
}

/// One inclusive range of a bracket group, with the width its numbers are padded to.
#[derive(Debug, Clone, Copy)]
struct Range {
    low: u64,
    high: u64,
    width: usize,
}

impl Range {
    fn parse(item: &str) -> Result<Self, NodelistProblem> {
        let bad = || NodelistProblem::BadRange(item.to_owned());
        let number = |s: &str| -> Result<u64, NodelistProblem> {
            // At most 18 digits: every value fits a u64 and counts cannot overflow.
            if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse().map_err(|_| bad())
        };
        let item = item.trim();
        let (low_text, high) = match item.split_once('-') {
            Some((low, high)) => (low, number(high)?),
            None => (item, number(item)?),
        };
        let low = number(low_text)?;
        if low > high {
            return Err(bad());
        }
        Ok(Self {
            low,
            high,
            width: low_text.len(),
        })
    }

    fn len(self) -> u64 {
        self.high - self.low + 1
    }
}

/// A piece of a host name pattern.
#[derive(Debug)]
enum Piece<'a> {
    Text(&'a str),
    Group(Vec<Range>),
}

/// One entry of the list: text and bracket groups.
#[derive(Debug)]
struct Pattern<'a> {
    pieces: Vec<Piece<'a>>,
}

impl<'a> Pattern<'a> {
    fn parse(entry: &'a str) -> Result<Self, NodelistProblem> {
        let entry = entry.trim();
        let mut pieces = Vec::new();
        let mut rest = entry;
        while let Some(open) = rest.find('[') {
            if open > 0 {
                pieces.push(Piece::Text(&rest[..open]));
            }
            let close = rest[open..]
                .find(']')
                .map(|i| open + i)
                .ok_or(NodelistProblem::UnclosedBracket)?;
            let ranges = rest[open + 1..close]
                .split(',')
                .map(Range::parse)
                .collect::<Result<Vec<_>, _>>()?;
            pieces.push(Piece::Group(ranges));
            rest = &rest[close + 1..];
        }
        if rest.contains(']') {
            return Err(NodelistProblem::StrayBracket);
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest));
        }
        Ok(Self { pieces })
    }

    /// How many names the pattern gives, or `None` past `usize`.
    fn count(&self) -> Option<usize> {
        self.pieces
            .iter()
            .try_fold(1usize, |acc, piece| match piece {
                Piece::Text(_) => Some(acc),
                Piece::Group(ranges) => {
                    let n = ranges
                        .iter()
                        .try_fold(0u64, |sum, range| sum.checked_add(range.len()))?;
                    acc.checked_mul(usize::try_from(n).ok()?)
                }
            })
    }

    /// Appends every name, the last group varying fastest.
    fn expand_into(&self, hosts: &mut Vec<String>) {
        let mut names = vec![String::new()];
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => names.iter_mut().for_each(|name| name.push_str(text)),
                Piece::Group(ranges) => {
                    names = names
                        .iter()
                        .flat_map(|prefix| {
                            ranges.iter().flat_map(move |range| {
                                (range.low..=range.high).map(move |n| {
                                    format!("{prefix}{n:0width$}", width = range.width)
                                })
                            })
                        })
                        .collect();
                }
            }
        }
        hosts.extend(names);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(list: &str) -> Vec<String> {
        expand_slurm_nodelist(list).unwrap()
    }

    fn problem(list: &str) -> NodelistProblem {
        match expand_slurm_nodelist(list) {
            Err(MasterError::SlurmNodelist { problem, .. }) => problem,
            other => panic!("{list}: expected a node list error, got {other:?}"),
        }
    }

    #[test]
    fn plain_names_and_comma_lists() {
        assert_eq!(expand("node1"), ["node1"]);
        assert_eq!(expand("a,b,c"), ["a", "b", "c"]);
        assert_eq!(expand(" gpu3 "), ["gpu3"]);
        assert_eq!(expand("n1.cluster.example"), ["n1.cluster.example"]);
    }

    #[test]
    fn ranges_keep_zero_padding() {
        assert_eq!(
            expand("node[01-04,07],gpu3"),
            ["node01", "node02", "node03", "node04", "node07", "gpu3"]
        );
        assert_eq!(expand("n[08-11]"), ["n08", "n09", "n10", "n11"]);
        assert_eq!(expand("n[9-11]"), ["n9", "n10", "n11"]);
        assert_eq!(expand("n[098-100]"), ["n098", "n099", "n100"]);
        assert_eq!(expand("n[5]"), ["n5"]);
    }

    #[test]
    fn several_groups_and_suffixes() {
        assert_eq!(
            expand("rack[1-2]-node[01-02]"),
            [
                "rack1-node01",
                "rack1-node02",
                "rack2-node01",
                "rack2-node02"
            ]
        );
        assert_eq!(expand("n[1-2]-ib"), ["n1-ib", "n2-ib"]);
        assert_eq!(expand("[1-2]x"), ["1x", "2x"]);
        assert_eq!(expand("a[1,3],b[2-3]c,d"), ["a1", "a3", "b2c", "b3c", "d"]);
    }

    #[test]
    fn malformed_lists_are_refused_with_the_reason() {
        assert_eq!(problem(""), NodelistProblem::Empty);
        assert_eq!(problem("   "), NodelistProblem::Empty);
        assert_eq!(problem("a,,b"), NodelistProblem::EmptyEntry);
        assert_eq!(problem("a,"), NodelistProblem::EmptyEntry);
        assert_eq!(problem("n[1-2"), NodelistProblem::UnclosedBracket);
        assert_eq!(problem("n1-2]"), NodelistProblem::StrayBracket);
        assert_eq!(problem("n[[1]]"), NodelistProblem::StrayBracket);
        assert_eq!(problem("n[3-1]"), NodelistProblem::BadRange("3-1".into()));
        assert_eq!(problem("n[a-b]"), NodelistProblem::BadRange("a-b".into()));
        assert_eq!(problem("n[]"), NodelistProblem::BadRange(String::new()));
        assert_eq!(problem("n[1-]"), NodelistProblem::BadRange("1-".into()));
        assert_eq!(problem("n[-1]"), NodelistProblem::BadRange("-1".into()));
        assert!(matches!(
            problem("n[1-9999999999999999999]"),
            NodelistProblem::BadRange(_)
        ));
    }

    #[test]
    fn absurd_expansions_are_refused_before_allocating() {
        assert_eq!(expand("n[1-65536]").len(), MAX_SLURM_HOSTS);
        assert_eq!(problem("n[1-65537]"), NodelistProblem::TooManyHosts);
        assert_eq!(problem("n[1-65536],x"), NodelistProblem::TooManyHosts);
        // 10^6 × 10^6 × … overflows nothing and allocates nothing.
        assert_eq!(
            problem("a[1-999999]b[1-999999]c[1-999999]d[1-999999]"),
            NodelistProblem::TooManyHosts
        );
        assert_eq!(
            problem("n[0-999999999999999999]"),
            NodelistProblem::TooManyHosts
        );
    }

    #[test]
    fn the_error_names_the_list_and_what_to_fix() {
        let err = expand_slurm_nodelist("node[3-1]").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("node[3-1]"), "{message}");
        assert!(message.contains("3-1"), "{message}");
        let long = format!("n[{}", "1,".repeat(500));
        let message = expand_slurm_nodelist(&long).unwrap_err().to_string();
        assert!(message.len() < 500, "{message}");
    }
}
