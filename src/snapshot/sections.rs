//! The entries of a plain-format `pg_dump` file and the section each belongs
//! to (docs/snapshots.md).
//!
//! pg_dump writes every archive entry behind a header comment
//! (`-- Name: t; Type: TABLE; Schema: public; Owner: -`) and orders its
//! output by section: every pre-data entry (types, functions, tables,
//! views…) before every post-data entry (indexes, constraints, triggers,
//! rules, policies, materialized-view refreshes). The first post-data entry
//! therefore splits a schema dump in two. The headers are found with a small
//! lexer of PostgreSQL's quoting, so that a function body or a rule that
//! contains such a line is never taken for a header.

use crate::sql_lexer::Lexer;

/// The archive entry types of pg_dump's post-data section (PostgreSQL 13–18).
const POST_DATA_KINDS: &[&str] = &[
    "CONSTRAINT",
    "CHECK CONSTRAINT",
    "FK CONSTRAINT",
    "INDEX",
    "INDEX ATTACH",
    "STATISTICS",
    "RULE",
    "TRIGGER",
    "EVENT TRIGGER",
    "POLICY",
    "ROW SECURITY",
    "PUBLICATION",
    "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA",
    "SUBSCRIPTION",
    "SUBSCRIPTION TABLE",
    "MATERIALIZED VIEW DATA",
];

/// The entry type of a materialized view's population (`REFRESH
/// MATERIALIZED VIEW`).
pub const MATVIEW_DATA: &str = "MATERIALIZED VIEW DATA";

/// One archive entry of a dump: its header and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Index (0-based) of the entry's first line: the `--` line above the
    /// `-- Name:` line.
    pub start: usize,
    /// Index of the line after its last line.
    pub end: usize,
    /// `TABLE`, `TRIGGER`, `TABLE DATA`, …
    pub kind: String,
    /// The name as pg_dump prints it (`reserved t` for trigger t on table
    /// reserved).
    pub name: String,
    /// The schema, `-` when the object has none.
    pub schema: String,
}

impl Entry {
    pub fn is_post_data(&self) -> bool {
        POST_DATA_KINDS.contains(&self.kind.as_str())
    }

    /// "trigger public.reserved t" (for messages).
    pub fn describe(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.schema == "-" {
            format!("{kind} {}", self.name)
        } else {
            format!("{kind} {}.{}", self.schema, self.name)
        }
    }

    /// Whether 0-based line index `line` belongs to this entry.
    pub fn contains(&self, line: usize) -> bool {
        (self.start..self.end).contains(&line)
    }
}

/// A dump split into lines and entries.
pub struct Dump<'a> {
    pub lines: Vec<&'a str>,
    pub entries: Vec<Entry>,
}

impl<'a> Dump<'a> {
    pub fn parse(text: &'a str) -> Dump<'a> {
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let mut entries: Vec<Entry> = Vec::new();
        let mut lexer = Lexer::default();
        let mut footer = None;
        // Inside the rows of a `COPY … FROM stdin;` (data dumps): not SQL.
        let mut in_copy = false;
        for (i, line) in lines.iter().enumerate() {
            if in_copy {
                in_copy = line.trim_end_matches(['\n', '\r']) != "\\.";
                continue;
            }
            if lexer.at_top_level() {
                let body = line.trim_end_matches(['\n', '\r']);
                if let Some(header) = parse_header(body) {
                    let start = if i > 0 && lines[i - 1].trim_end() == "--" {
                        i - 1
                    } else {
                        i
                    };
                    if let Some(last) = entries.last_mut() {
                        last.end = start;
                    }
                    entries.push(Entry {
                        start,
                        end: lines.len(),
                        ..header
                    });
                } else if body == "-- PostgreSQL database dump complete" {
                    let start = if i > 0 && lines[i - 1].trim_end() == "--" {
                        i - 1
                    } else {
                        i
                    };
                    footer = Some(start);
                }
            }
            let top = lexer.at_top_level();
            lexer.feed(line.as_bytes(), |_| true);
            in_copy = top
                && line.starts_with("COPY ")
                && line
                    .trim_end_matches(['\n', '\r'])
                    .ends_with(" FROM stdin;");
        }
        if let (Some(last), Some(f)) = (entries.last_mut(), footer)
            && f > last.start
        {
            last.end = f;
        }
        Dump { lines, entries }
    }

    /// The index of the first line of the post-data part, if there is one.
    pub fn post_data_start(&self) -> Option<usize> {
        self.entries
            .iter()
            .find(|e| e.is_post_data())
            .map(|e| e.start)
    }

    /// The index of the first line of the first entry (what precedes it is
    /// pg_dump's header of `SET` commands).
    pub fn header_end(&self) -> usize {
        self.entries
            .first()
            .map(|e| e.start)
            .unwrap_or(self.lines.len())
    }

    /// The entry holding 0-based line `line`.
    pub fn entry_at(&self, line: usize) -> Option<&Entry> {
        self.entries.iter().find(|e| e.contains(line))
    }

    /// The text without the entries of `kind`.
    pub fn without(&self, kind: &str) -> String {
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            if !self.entries.iter().any(|e| e.kind == kind && e.contains(i)) {
                out.push_str(line);
            }
        }
        out
    }
}

/// The schema text as compared for drift: the materialized views'
/// population is data, not schema (and snapshots written before it was
/// recorded lack it).
/// An entry that is only comments (pg_dump's `*not* creating schema,
/// since initdb creates it` for a `public` schema that was dropped and
/// made again, as half-orm-dev's restore does) holds no schema either.
pub fn for_drift(schema: &str) -> String {
    let d = Dump::parse(schema);
    let mut out = String::new();
    for (i, line) in d.lines.iter().enumerate() {
        let skip = d.entry_at(i).is_some_and(|e| {
            e.kind == MATVIEW_DATA
                || d.lines[e.start..e.end].iter().all(|l| {
                    let l = l.trim();
                    l.is_empty() || l.starts_with("--")
                })
        });
        if !skip {
            out.push_str(line);
        }
    }
    out
}

/// `-- Name: N; Type: T; Schema: S; Owner: O` (or `-- Data for Name: …`).
fn parse_header(line: &str) -> Option<Entry> {
    let rest = line
        .strip_prefix("-- Name: ")
        .or_else(|| line.strip_prefix("-- Data for Name: "))?;
    let (name, rest) = rest.split_once("; Type: ")?;
    let (kind, rest) = rest.split_once("; Schema: ")?;
    let schema = rest.split_once("; Owner:").map(|(s, _)| s).unwrap_or(rest);
    Some(Entry {
        start: 0,
        end: 0,
        kind: kind.to_string(),
        name: name.to_string(),
        schema: schema.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\n--\n-- Name: f(); Type: FUNCTION; Schema: public; Owner: -\n--\n\nCREATE FUNCTION public.f() RETURNS trigger\n    LANGUAGE plpgsql\n    AS $_$ BEGIN\n--\n-- Name: fake; Type: TRIGGER; Schema: public; Owner: -\n--\nRETURN NEW; END $_$;\n\n\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.t (\n    a text DEFAULT '\n-- Name: x; Type: INDEX; Schema: public; Owner: -\n'::text\n);\n\n\n--\n-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: -\n--\n\nALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (a);\n\n\n--\n-- Name: mv; Type: MATERIALIZED VIEW DATA; Schema: public; Owner: -\n--\n\nREFRESH MATERIALIZED VIEW public.mv;\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n";

    #[test]
    fn drift_ignores_comment_only_entries_and_matview_data() {
        let public = "--\n-- Name: public; Type: SCHEMA; Schema: -; Owner: -\n--\n\n-- *not* creating schema, since initdb creates it\n\n\n";
        let with = DUMP.replacen("--\n-- Name: f()", &format!("{public}--\n-- Name: f()"), 1);
        assert_ne!(with, DUMP);
        assert_eq!(for_drift(&with), for_drift(DUMP));
        assert!(!for_drift(DUMP).contains("REFRESH MATERIALIZED VIEW"));
        assert!(for_drift(DUMP).contains("CREATE TABLE public.t"));
    }

    #[test]
    fn headers_inside_bodies_and_strings_are_not_entries() {
        let d = Dump::parse(DUMP);
        let kinds: Vec<&str> = d.entries.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["FUNCTION", "TABLE", "CONSTRAINT", "MATERIALIZED VIEW DATA"]
        );
        assert_eq!(d.header_end(), 7);
        let post = d.post_data_start().unwrap();
        assert_eq!(d.lines[post], "--\n");
        assert!(d.lines[post + 1].contains("t t_pkey; Type: CONSTRAINT"));
        let c = &d.entries[2];
        assert_eq!(c.describe(), "constraint public.t t_pkey");
        assert_eq!(d.entry_at(post + 5), Some(c));
        // The last entry ends before the footer.
        assert_eq!(d.lines[d.entries[3].end], "--\n");
        assert!(d.lines[d.entries[3].end + 1].contains("dump complete"));
    }

    #[test]
    fn drift_text_drops_only_materialized_view_data() {
        let t = for_drift(DUMP);
        assert!(!t.contains("REFRESH"));
        assert!(t.contains("ADD CONSTRAINT t_pkey"));
        assert!(t.ends_with("--\n-- PostgreSQL database dump complete\n--\n\n"));
        assert_eq!(for_drift(&t), t);
    }

    #[test]
    fn rows_of_a_copy_are_not_sql() {
        let data = "SET x = 0;\n\n--\n-- Data for Name: a; Type: TABLE DATA; Schema: public; Owner: -\n--\n\nCOPY public.a (v) FROM stdin;\nit's $$\n\\.\n\n\n--\n-- Data for Name: b; Type: TABLE DATA; Schema: public; Owner: -\n--\n\nCOPY public.b (v) FROM stdin;\n\\.\n";
        let d = Dump::parse(data);
        let names: Vec<&str> = d.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(d.entry_at(7).unwrap().describe(), "table data public.a");
    }
}
