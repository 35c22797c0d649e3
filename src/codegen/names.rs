//! Python names for PostgreSQL names: identifiers, class names, and file
//! names that never collide.
//!
//! PostgreSQL accepts any text as a name (`2fa_codes`, `order`, `my table`,
//! `a"b`); Python modules and classes do not. Every mapping here is a pure
//! function of the names involved, so the same database always gives the same
//! files, and [`disambiguate`] makes sure two names never share one file, even
//! on a case-insensitive file system.

use sha2::{Digest, Sha256};

/// Python's keywords (3.8–3.13). Soft keywords (`match`, `case`, `type`, `_`)
/// are valid identifiers and are not listed.
const PY_KEYWORDS: [&str; 35] = [
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// File and directory names a relation or schema must never take.
pub const RESERVED: [&str; 3] = ["__init__", "__pycache__", "__main__"];

pub fn is_keyword(s: &str) -> bool {
    PY_KEYWORDS.contains(&s)
}

/// True when `s` is an ASCII Python identifier that is not a keyword.
pub fn is_plain_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !is_keyword(s)
}

/// A valid ASCII Python identifier for `name`, the way half-orm-dev makes
/// them: every character other than `[A-Za-z0-9_]` becomes `_`, a leading
/// digit gets a `_` prefix, a keyword gets a `_` suffix. Case is kept.
pub fn identifier(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if is_keyword(&s) {
        s.push('_');
    }
    s
}

/// half_orm's `pg_meta.camel_case`: lower-case everything, drop the
/// non-alphanumeric characters and capitalize the character after each.
/// Non-ASCII characters count as separators here, so the result is ASCII.
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut capitalize = true;
    for c in name.chars().flat_map(char::to_lowercase) {
        if !c.is_ascii_alphanumeric() {
            capitalize = true;
            continue;
        }
        if capitalize {
            out.push(c.to_ascii_uppercase());
            capitalize = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The class name of a relation: `CamelCase(relation)` as half_orm computes
/// it (so that half_orm finds the class when it follows a foreign key), made
/// a valid identifier (`2fa_codes` → `_2faCodes`, `none` → `None_`).
pub fn class_name(relation: &str) -> String {
    let mut s = camel_case(relation);
    if s.is_empty() {
        s.push_str("Relation");
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if is_keyword(&s) {
        s.push('_');
    }
    s
}

/// `n` hex digits of the SHA-256 of `s`.
pub fn short_hash(s: &str, n: usize) -> String {
    let digest = Sha256::digest(s.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..n.min(hex.len())].to_string()
}

/// Final names for `items`, given as `(original, candidate)` pairs where the
/// originals are distinct. Names are compared case-insensitively (files must
/// not collide on macOS or Windows either) and against [`RESERVED`].
///
/// A candidate nobody else wants keeps its name. In a group that collides,
/// the member whose original is exactly the candidate (preferring the
/// lower-case one) keeps it; every other member becomes
/// `<candidate>_<hash of its original>`. The result is the same whatever the
/// order of `items`.
pub fn disambiguate(items: &[(String, String)]) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let fold = |s: &str| s.to_ascii_lowercase();
    let mut hash_len = 8;
    loop {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, (_, cand)) in items.iter().enumerate() {
            groups.entry(fold(cand)).or_default().push(i);
        }
        let mut out: Vec<String> = items.iter().map(|(_, c)| c.clone()).collect();
        for (folded, members) in &groups {
            let reserved = RESERVED.iter().any(|r| fold(r) == *folded);
            if members.len() == 1 && !reserved {
                continue;
            }
            // Who keeps the plain name: an exact original, lower-case first.
            let keeper = if reserved {
                None
            } else {
                members
                    .iter()
                    .copied()
                    .filter(|&i| items[i].0 == items[i].1)
                    .min_by_key(|&i| (items[i].0 != items[i].0.to_lowercase(), &items[i].0))
            };
            for &i in members {
                if Some(i) != keeper {
                    out[i] = format!("{}_{}", items[i].1, short_hash(&items[i].0, hash_len));
                }
            }
        }
        let distinct: BTreeSet<String> = out.iter().map(|s| fold(s)).collect();
        if distinct.len() == out.len() || hash_len >= 64 {
            return out;
        }
        hash_len += 8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_half_orm_dev_rules() {
        assert_eq!(identifier("users"), "users");
        assert_eq!(identifier("order"), "order");
        assert_eq!(identifier("2fa_codes"), "_2fa_codes");
        assert_eq!(identifier("class"), "class_");
        assert_eq!(identifier("None"), "None_");
        assert_eq!(identifier("my table"), "my_table");
        assert_eq!(identifier("a\"b"), "a_b");
        assert_eq!(identifier("été"), "_t_");
        assert_eq!(identifier(""), "_");
        assert_eq!(identifier("Users"), "Users");
        for s in [
            "users",
            "order",
            "2fa_codes",
            "class",
            "None",
            "my table",
            "a\"b",
            "été",
            "",
        ] {
            assert!(is_plain_identifier(&identifier(s)), "{s}");
        }
    }

    #[test]
    fn class_names_match_half_orm_camel_case() {
        // Values computed with half_orm.pg_meta.camel_case.
        assert_eq!(class_name("users"), "Users");
        assert_eq!(class_name("user_profiles"), "UserProfiles");
        assert_eq!(class_name("UserProfiles"), "Userprofiles");
        assert_eq!(class_name("order"), "Order");
        assert_eq!(class_name("2fa_codes"), "_2faCodes");
        assert_eq!(class_name("my table"), "MyTable");
        assert_eq!(class_name("none"), "None_");
        assert_eq!(class_name("___"), "Relation");
    }

    #[test]
    fn disambiguation_keeps_exact_names_and_hashes_the_others() {
        let items = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        // No collision: unchanged.
        assert_eq!(disambiguate(&items(&[("a", "a"), ("b", "b")])), ["a", "b"]);
        // `my table` and `my_table` collide; the exact one keeps the name.
        let out = disambiguate(&items(&[
            ("my table", "my_table"),
            ("my_table", "my_table"),
        ]));
        assert_eq!(out[1], "my_table");
        assert_eq!(out[0], format!("my_table_{}", short_hash("my table", 8)));
        // Case-insensitive: `Users` and `users`; lower-case wins, order irrelevant.
        let a = disambiguate(&items(&[("Users", "Users"), ("users", "users")]));
        let b = disambiguate(&items(&[("users", "users"), ("Users", "Users")]));
        assert_eq!(a[1], "users");
        assert_eq!(b[0], "users");
        assert_eq!(a[0], b[1]);
        assert!(a[0].starts_with("Users_"));
        // Reserved names never stay.
        let out = disambiguate(&items(&[("__init__", "__init__")]));
        assert_ne!(out[0], "__init__");
        // Two non-exact members both get hashes, and differ.
        let out = disambiguate(&items(&[("a b", "a_b"), ("a-b", "a_b")]));
        assert_ne!(out[0], out[1]);
        assert!(out.iter().all(|s| s.starts_with("a_b_")));
    }
}
