//! The typed API of a relation's module (docs/codegen.md, "Typed API"): the
//! API half-orm-dev 1.1 generates, so that a project moving over keeps its
//! types. For relation `shop.order_line`, in its own module:
//!
//! - `ShopOrderLineDict`, a `TypedDict` of its columns (a row);
//! - `BC_ShopOrderLine`, its half_orm class with `ho_select`, `ho_get`,
//!   `ho_insert` and their async variants returning those rows, and, for
//!   type checkers, its columns as half_orm `Field`s and its direct foreign
//!   keys as the classes they lead to;
//! - a typed `__init__` on the user's class.
//!
//! Types follow half_orm's SQL adapter (`half_orm.sql_adapter`), as
//! half-orm-dev's do: the same names, fields and annotations. Everything
//! sits in the relation's own module, never in one file for the whole
//! package, so two patches that add relations never conflict on generated
//! code when their branches merge.

use std::collections::BTreeMap;

use super::introspect::{Column, Relation};
use super::names;

/// The Python type half_orm maps a PostgreSQL type name to
/// (`half_orm.sql_adapter.SQL_ADAPTER`), as `(module, name)`; `None`:
/// `typing.Any`.
fn adapter(type_name: &str) -> Option<(&'static str, &'static str)> {
    let builtin = |n| Some(("builtins", n));
    match type_name {
        "string" | "character" | "char" | "bpchar" | "character varying" | "varchar" | "path"
        | "text" => builtin("str"),
        "bigint" | "int8" | "bigserial" | "serial8" | "integer" | "int" | "int4" | "smallint"
        | "int2" | "smallserial" | "serial2" | "serial" | "serial4" => builtin("int"),
        "boolean" | "bool" => builtin("bool"),
        "double precision" | "float8" | "numeric" | "decimal" | "real" | "float4" => {
            builtin("float")
        }
        "date" => Some(("datetime", "date")),
        "time" | "timestamp" => Some(("datetime", "datetime")),
        "uuid" => Some(("uuid", "UUID")),
        _ => None,
    }
}

/// A column's type: `(element type, is an array)`.
fn element(col: &Column) -> (Option<(&'static str, &'static str)>, bool) {
    match col.type_name.strip_prefix('_') {
        Some(base) => (adapter(base), true),
        None => (adapter(&col.type_name), false),
    }
}

/// The modules a relation's annotations need imported (`datetime`, `uuid`).
pub fn imports(rel: &Relation) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = rel
        .columns
        .iter()
        .filter_map(|c| element(c).0)
        .map(|(m, _)| m)
        .filter(|m| *m != "builtins")
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The annotation of a column in the row's TypedDict: `Optional[int]`,
/// `Optional[List[str]]`, `Optional[datetime.date]`, `Optional[Any]`.
fn dict_annotation(col: &Column, t: &Typing) -> String {
    let (ty, array) = element(col);
    let inner = match ty {
        None => t.name("Any"),
        Some(("builtins", n)) => n.to_string(),
        Some((m, n)) => format!("{m}.{n}"),
    };
    let inner = if array {
        format!("{}[{inner}]", t.name("List"))
    } else {
        inner
    };
    format!("{}[{inner}]", t.name("Optional"))
}

/// The annotation of a column's `__init__` argument, as half-orm-dev writes
/// it from half_orm's `Field.py_type`: `'typing.Optional[int]'`, arrays
/// `'typing.Optional[typing.List]'`.
fn init_annotation(col: &Column) -> String {
    let ty = match element(col) {
        (_, true) => "typing.List".to_string(),
        (None, false) => "typing.Any".to_string(),
        (Some(("builtins", n)), false) => n.to_string(),
        (Some((m, n)), false) => format!("{m}.{n}"),
    };
    format!("'typing.Optional[{ty}]'")
}

/// half-orm-dev's name of a relation's typed classes: each dotted part of
/// the schema and each `_`-separated part of the relation capitalized
/// (Python's `str.capitalize`), joined; made a valid identifier.
pub fn full_name(schema: &str, relation: &str) -> String {
    let cap = |w: &str| {
        let mut c = w.chars();
        match c.next() {
            Some(f) => f
                .to_uppercase()
                .chain(c.flat_map(char::to_lowercase))
                .collect(),
            None => String::new(),
        }
    };
    let s: String = schema
        .split('.')
        .map(cap)
        .chain(relation.split('_').map(cap))
        .collect::<Vec<String>>()
        .concat();
    if names::is_plain_identifier(&s) {
        s
    } else {
        names::identifier(&s)
    }
}

/// How the module spells names of `typing`: bare (as half-orm-dev does),
/// or `typing.X` when the relation's own class would shadow one.
pub struct Typing {
    qualified: bool,
}

const TYPING_NAMES: [&str; 6] = ["Any", "Iterator", "List", "Optional", "TypedDict", "Type"];

impl Typing {
    pub fn for_class(class: &str) -> Typing {
        Typing {
            qualified: TYPING_NAMES.contains(&class) || class == "TYPE_CHECKING",
        }
    }

    pub fn name(&self, n: &str) -> String {
        if self.qualified {
            format!("typing.{n}")
        } else {
            n.to_string()
        }
    }

    /// The module's `from typing import …` line (none when qualified).
    pub fn import_line(&self) -> String {
        if self.qualified {
            String::new()
        } else {
            "from typing import TYPE_CHECKING, Any, Iterator, List, Optional, TypedDict\n".into()
        }
    }

    fn checking(&self) -> &'static str {
        if self.qualified {
            "typing.TYPE_CHECKING"
        } else {
            "TYPE_CHECKING"
        }
    }
}

/// The other relations' classes, for foreign-key annotations: (schema,
/// relation) → (dotted module, class).
pub type Targets = BTreeMap<(String, String), (String, String)>;

/// The typed part of a relation's module, between its imports and the
/// user's module-level code: the `TYPE_CHECKING` imports, the base the
/// class derives from, the row's TypedDict and the typed base class.
/// `base_expr` is the half_orm class expression
/// (`MODEL.get_relation_class(…)`); `aliases` the Python names of columns
/// that are not identifiers; `own` the relation's own (module, class).
pub fn render_typed(
    rel: &Relation,
    base_expr: &str,
    aliases: &[(String, String)],
    class: &str,
    own: &(String, String),
    targets: &Targets,
) -> String {
    let t = Typing::for_class(class);
    let full = full_name(&rel.schema, &rel.name);
    let dict = format!("{full}Dict");
    let bc = format!("BC_{full}");
    let opt = t.name("Optional");
    let iter = t.name("Iterator");
    let list = t.name("List");

    // Direct foreign keys to a relation of the package: their attribute
    // (half_orm's `fk_<constraint>`) and the class it leads to.
    let attr_of = |c: &Column| {
        aliases
            .iter()
            .find(|(n, _)| *n == c.name)
            .map(|(_, a)| a.clone())
            .unwrap_or_else(|| c.name.clone())
    };
    let columns: Vec<String> = rel.columns.iter().map(attr_of).collect();
    let mut imports: Vec<String> = Vec::new();
    let mut fks: Vec<(String, String)> = Vec::new();
    for fk in &rel.foreign_keys {
        let attr = format!("fk_{}", fk.name);
        if !names::is_plain_identifier(&attr) || columns.contains(&attr) {
            continue;
        }
        let Some((module, target)) = targets.get(&(fk.ref_schema.clone(), fk.ref_relation.clone()))
        else {
            continue;
        };
        let ty = if (module, target) == (&own.0, &own.1) {
            target.clone()
        } else {
            let alias = format!("_HoFk{}", imports.len());
            imports.push(format!("    from {module} import {target} as {alias}\n"));
            alias
        };
        fks.push((attr, ty));
    }

    let mut out = String::new();
    out.push_str(&format!("if {}:\n", t.checking()));
    out.push_str("    from half_orm.field import Field as _HoField\n");
    out.push_str("    from half_orm.relation import Relation as _HoRelation\n");
    for i in &imports {
        out.push_str(i);
    }
    out.push_str("\n    _HoBase = _HoRelation\n");
    out.push_str(&format!("else:\n    _HoBase = {base_expr}\n\n\n"));

    // The row.
    out.push_str(&format!(
        "class {dict}({}, total=False):\n",
        t.name("TypedDict")
    ));
    let mut any = false;
    for c in &rel.columns {
        if !names::is_plain_identifier(&c.name) {
            continue;
        }
        any = true;
        out.push_str(&format!("    {}: {}\n", c.name, dict_annotation(c, &t)));
    }
    if !any {
        out.push_str("    pass\n");
    }

    // The typed base class: half-orm-dev's signatures.
    out.push_str(&format!("\n\nclass {bc}(_HoBase):\n"));
    if !columns.is_empty() || !fks.is_empty() {
        out.push_str(&format!("    if {}:\n", t.checking()));
        for c in &columns {
            out.push_str(&format!("        {c}: _HoField\n"));
        }
        for (attr, ty) in &fks {
            out.push_str(&format!("        {attr}: type[{ty}]\n"));
        }
        out.push('\n');
    }
    let methods = [
        format!(
            "    def __iter__(self) -> {iter}[{dict}]:\n        return super().__iter__()  # type: ignore[return-value]\n"
        ),
        format!(
            "    def ho_select(self, *args, distinct: bool = False, order_by: {opt}[str] = None, limit: {opt}[int] = None, offset: {opt}[int] = None, json_agg=None) -> {iter}[{dict}]:\n        return super().ho_select(*args, distinct=distinct, order_by=order_by, limit=limit, offset=offset, json_agg=json_agg)  # type: ignore[return-value]\n"
        ),
        format!(
            "    def ho_get(self, *args) -> {dict}:  # type: ignore[override]\n        return super().ho_get(*args)  # type: ignore[return-value]\n"
        ),
        format!(
            "    def ho_insert(self, *args, upsert: {opt}[bool] = False) -> {dict}:  # type: ignore[override]\n        return super().ho_insert(*args, upsert=upsert)  # type: ignore[return-value]\n"
        ),
        format!(
            "    async def ho_aselect(self, *args, distinct: bool = False, order_by: {opt}[str] = None, limit: {opt}[int] = None, offset: {opt}[int] = None) -> {list}[{dict}]:  # type: ignore[override]\n        return await super().ho_aselect(*args, distinct=distinct, order_by=order_by, limit=limit, offset=offset)  # type: ignore[return-value]\n"
        ),
        format!(
            "    async def ho_aget(self, *args) -> {dict}:  # type: ignore[override]\n        return await super().ho_aget(*args)  # type: ignore[return-value]\n"
        ),
        format!(
            "    async def ho_ainsert(self, *args, upsert: bool = False) -> {dict}:  # type: ignore[override]\n        return await super().ho_ainsert(*args, upsert=upsert)  # type: ignore[return-value]\n"
        ),
    ];
    out.push_str(&methods.join("\n"));
    out
}

/// The typed `__init__` of the user's class: one optional keyword per
/// column that is a plain identifier, as half-orm-dev writes it; the others
/// (and any alias) go through `**kwargs`.
pub fn render_init(rel: &Relation) -> String {
    let cols: Vec<&Column> = rel
        .columns
        .iter()
        .filter(|c| names::is_plain_identifier(&c.name) && c.name != "self" && c.name != "kwargs")
        .collect();
    let mut params: Vec<String> = cols
        .iter()
        .map(|c| format!("{}: {}=None", c.name, init_annotation(c)))
        .collect();
    params.push("**kwargs".into());
    let mut args: Vec<String> = cols.iter().map(|c| format!("{0}={0}", c.name)).collect();
    args.push("**kwargs".into());
    format!(
        "    #pylint: disable=line-too-long, too-many-arguments, redefined-builtin, too-many-positional-arguments\n    def __init__(self, {}):\n        super().__init__({})\n",
        params.join(", "),
        args.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_names_follow_half_orm_dev() {
        assert_eq!(full_name("shop", "order_line"), "ShopOrderLine");
        assert_eq!(full_name("public", "myTable"), "PublicMytable");
        assert_eq!(full_name("a.b", "x"), "ABX");
        assert_eq!(full_name("public", "my col"), "PublicMy_col");
    }

    #[test]
    fn types_follow_half_orms_adapter() {
        let c = |t: &str| Column {
            name: "c".into(),
            sql_type: String::new(),
            not_null: false,
            default: None,
            identity: None,
            generated: None,
            type_name: t.into(),
        };
        let t = Typing::for_class("X");
        assert_eq!(dict_annotation(&c("int4"), &t), "Optional[int]");
        assert_eq!(dict_annotation(&c("_text"), &t), "Optional[List[str]]");
        assert_eq!(dict_annotation(&c("date"), &t), "Optional[datetime.date]");
        assert_eq!(dict_annotation(&c("timestamptz"), &t), "Optional[Any]");
        assert_eq!(dict_annotation(&c("mood"), &t), "Optional[Any]");
        assert_eq!(
            init_annotation(&c("_int4")),
            "'typing.Optional[typing.List]'"
        );
        assert_eq!(init_annotation(&c("uuid")), "'typing.Optional[uuid.UUID]'");
        assert_eq!(
            init_annotation(&c("jsonb")),
            "'typing.Optional[typing.Any]'"
        );
        let q = Typing::for_class("Iterator");
        assert_eq!(
            dict_annotation(&c("_int4"), &q),
            "typing.Optional[typing.List[int]]"
        );
    }
}
