//! Tests of code generation against a real PostgreSQL cluster (started here,
//! socket only, as the `postgres` user when run as root) and the real
//! `half-orm` package from PyPI, installed once into a venv cached under the
//! target directory.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use super::*;

// ---------------------------------------------------------------- PostgreSQL

/// Databases on the shared test cluster (tests/common/pg.rs).
struct Pg {
    server: &'static crate::test_pg::TestServer,
}

impl Pg {
    fn start() -> Pg {
        Pg {
            server: crate::test_pg::server(),
        }
    }

    fn client(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.server.socket_dir)
            .port(self.server.port)
            .user(&self.server.superuser)
            .dbname(db)
            .connect(postgres::NoTls)
            .unwrap()
    }

    /// A new database (its name made unique in this test run from
    /// `prefix`); returns the name and a client.
    fn create_db(&self, prefix: &str) -> (String, postgres::Client) {
        let db = crate::test_pg::unique_db_name(prefix);
        self.server.create_db(&db);
        let client = self.client(&db);
        (db, client)
    }

    fn params(&self, db: &str) -> HalformParams {
        HalformParams {
            dbname: db.to_string(),
            host: Some(self.server.socket_dir.display().to_string()),
            port: Some(self.server.port),
            user: Some(self.server.superuser.clone()),
        }
    }
}

// ---------------------------------------------------------------- Python

#[allow(dead_code)] // the integration tests use all of it
#[path = "../../tests/common/venv.rs"]
mod venv;
use venv::venv_python;

/// Runs `python -c script` in `root` with the package importable and
/// `HALFORM_CONF_DIR` set; returns stdout, panics with stderr on failure.
fn python(root: &Path, conf_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(venv_python())
        .args(args)
        .current_dir(root)
        .env("HALFORM_CONF_DIR", conf_dir)
        .env("PYTHONPATH", root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().unwrap() != "__pycache__"
                    && p.file_name().unwrap() != ".pytest_cache"
                {
                    stack.push(p);
                }
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// `python3 -m py_compile` on every generated `.py` file.
fn py_compile(python: &Path, root: &Path) {
    let files: Vec<PathBuf> = all_files(root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    assert!(!files.is_empty());
    let out = Command::new(python)
        .args(["-m", "py_compile"])
        .args(&files)
        .current_dir(root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "py_compile: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

type Snapshot = BTreeMap<PathBuf, (Vec<u8>, SystemTime)>;

fn snapshot(root: &Path) -> Snapshot {
    all_files(root)
        .into_iter()
        .map(|p| {
            let abs = root.join(&p);
            let bytes = std::fs::read(&abs).unwrap();
            let mtime = std::fs::metadata(&abs).unwrap().modified().unwrap();
            (p, (bytes, mtime))
        })
        .collect()
}

fn read(root: &Path, p: &str) -> String {
    std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

// ---------------------------------------------------------------- model-only tests

fn col(name: &str, ty: &str) -> Column {
    Column {
        name: name.into(),
        sql_type: ty.into(),
        not_null: false,
        default: None,
        identity: None,
        generated: None,
        type_name: ty.into(),
    }
}

fn rel(schema: &str, name: &str, cols: &[&str]) -> Relation {
    Relation {
        schema: schema.into(),
        name: name.into(),
        kind: RelationKind::Table,
        columns: cols.iter().map(|c| col(c, "text")).collect(),
        primary_key: vec![],
        foreign_keys: vec![],
    }
}

/// Names PostgreSQL accepts and Python does not, including ones that
/// collide once made valid: every relation still gets its own module and the
/// package compiles.
#[test]
fn awkward_names_give_distinct_compilable_modules() {
    let mut weird = rel(
        "public",
        "class",
        &["class", "class_", "2nd", "my col", "a\"b", "x"],
    );
    weird.columns[5].default = Some(r#"'say """hi""" \N'::text"#.into());
    weird.primary_key = vec!["class".into()];
    weird.foreign_keys = vec![ForeignKey {
        name: "fk\"1".into(),
        columns: vec!["x".into()],
        ref_schema: "Sales".into(),
        ref_relation: "my table".into(),
        ref_columns: vec!["id".into()],
    }];
    let model = Model {
        relations: vec![
            rel("Sales", "my table", &["id"]),
            rel("Sales", "my_table", &["id"]),
            rel("public", "Users", &["id"]),
            rel("public", "__init__", &["id"]),
            rel("public", "a'b\\c", &["id"]),
            rel("public", "none", &["id"]),
            rel("public", "users", &["id"]),
            weird,
            rel("sales", "t", &["id"]),
        ],
    };
    let root = tempfile::tempdir().unwrap();
    let report = generate(&model, root.path(), "pkg", "pkg").unwrap();
    let files = all_files(root.path());
    let modules: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.starts_with("pkg") && !p.ends_with("__init__.py"))
        .collect();
    assert_eq!(modules.len(), model.relations.len(), "{files:#?}");
    let lower: std::collections::BTreeSet<String> = files
        .iter()
        .map(|p| p.to_string_lossy().to_lowercase())
        .collect();
    assert_eq!(
        lower.len(),
        files.len(),
        "case-insensitive collision: {files:#?}"
    );
    assert!(root.path().join("pkg/public/users.py").exists());
    assert!(root.path().join("pkg/public/class_.py").exists());
    assert!(root.path().join("pkg/public/none.py").exists());
    assert!(root.path().join("pkg/sales/t.py").exists());
    let sales_dir = format!("pkg/Sales_{}", names::short_hash("Sales", 8));
    assert!(
        root.path().join(&sales_dir).join("my_table.py").exists(),
        "{files:#?}"
    );
    let spaced = format!(
        "{sales_dir}/my_table_{}.py",
        names::short_hash("my table", 8)
    );
    assert!(read(root.path(), &spaced).contains("'\"Sales\".\"my table\"'"));
    let init = format!(
        "pkg/public/__init___{}.py",
        names::short_hash("__init__", 8)
    );
    assert!(root.path().join(&init).exists(), "{files:#?}");
    let users = read(root.path(), "pkg/public/users.py");
    assert!(
        users.contains("    _HoBase = MODEL.get_relation_class('\"public\".\"users\"')\n")
            && users.contains("class Users(BC_PublicUsers):"),
        "{users}"
    );
    let weird = read(root.path(), "pkg/public/class_.py");
    assert!(weird.contains("    _HoBase = MODEL.get_relation_class('\"public\".\"class\"', fields_aliases={'class': 'class__', '2nd': '_2nd', 'my col': 'my_col', 'a\"b': 'a_b'})\n"), "{weird}");
    assert!(weird.contains("class Class(BC_PublicClass):"), "{weird}");
    assert!(read(root.path(), "pkg/public/none.py").contains("class None_("));
    assert_eq!(report.written.len(), files.len());
    // Every name still compiles, docstrings included.
    py_compile(Path::new("python3"), root.path());

    // Regenerating writes nothing.
    let again = generate(&model, root.path(), "pkg", "pkg").unwrap();
    assert!(
        again.written.is_empty() && again.removed.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.unchanged, files.len());
}

#[test]
fn a_hand_written_file_in_the_way_stops_generation_before_any_write() {
    let root = tempfile::tempdir().unwrap();
    let model = Model {
        relations: vec![rel("public", "a", &["id"]), rel("public", "b", &["id"])],
    };
    std::fs::create_dir_all(root.path().join("pkg/public")).unwrap();
    std::fs::write(
        root.path().join("pkg/public/b.py"),
        "def mine():\n    return 1\n",
    )
    .unwrap();
    let err = generate(&model, root.path(), "pkg", "pkg").unwrap_err();
    assert!(
        err.message
            .contains("pkg/public/b.py: the line `#>>> PLACE YOUR CODE BELOW"),
        "{}",
        err.message
    );
    assert_eq!(
        all_files(root.path()),
        vec![PathBuf::from("pkg/public/b.py")]
    );
    assert_eq!(
        read(root.path(), "pkg/public/b.py"),
        "def mine():\n    return 1\n"
    );
    // An empty file is not in the way.
    std::fs::write(root.path().join("pkg/public/b.py"), "\n").unwrap();
    generate(&model, root.path(), "pkg", "pkg").unwrap();
    assert!(read(root.path(), "pkg/public/b.py").starts_with(python::HEADER));
}

#[test]
fn bad_package_or_config_names_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let m = Model::default();
    assert!(
        generate(&m, root.path(), "my-pkg", "x")
            .unwrap_err()
            .message
            .contains("\"my-pkg\"")
    );
    assert!(generate(&m, root.path(), "class", "x").is_err());
    assert!(generate(&m, root.path(), "pkg", "../etc").is_err());
    assert!(generate(&m, root.path(), "pkg", "").is_err());
    assert!(all_files(root.path()).is_empty());
}

#[test]
fn halform_config_is_private_and_reads_back_with_configparser() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    let params = HalformParams {
        dbname: "shop".into(),
        host: Some("/tmp/sock dir".into()),
        port: Some(5433),
        user: Some("u%1".into()),
    };
    let path = write_halform_config(&conf, "shop", &params).unwrap();
    assert_eq!(path, conf.join("shop"));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.to_lowercase().contains("password ="), "{text}");
    let out = Command::new("python3")
        .args([
            "-c",
            "import configparser,sys; c=configparser.ConfigParser(); c.read(sys.argv[1]); d=c['database']; print(d['name'], d['host'], d['port'], d['user'], sep='|')",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "shop|/tmp/sock dir|5433|u%1"
    );
    // Rewriting keeps it private; bad values are refused.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    write_halform_config(&conf, "shop", &params).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let bad = HalformParams {
        dbname: "a\nb".into(),
        ..params.clone()
    };
    assert!(write_halform_config(&conf, "shop", &bad).is_err());
    assert!(write_halform_config(&conf, "a/b", &params).is_err());
}

// ---------------------------------------------------------------- database tests

const SCHEMA: &str = r#"
CREATE SCHEMA sales;
CREATE SCHEMA "audit log";
CREATE SCHEMA half_orm_meta;
CREATE TABLE half_orm_meta.hop_release (version text PRIMARY KEY);
CREATE TYPE public.mood AS ENUM ('ok', 'meh');
CREATE TABLE public.users (
    id serial PRIMARY KEY,
    name text NOT NULL,
    "class" text,
    mood public.mood DEFAULT 'ok',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE public."order" (
    id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id int NOT NULL REFERENCES public.users(id),
    total numeric(10,2) NOT NULL DEFAULT 0
);
CREATE TABLE public."2fa_codes" (
    code text PRIMARY KEY,
    user_id int NOT NULL REFERENCES public.users(id)
);
CREATE TABLE sales.invoice (
    order_id int NOT NULL,
    line int NOT NULL,
    amount numeric(12,2),
    amount_x2 numeric GENERATED ALWAYS AS (amount * 2) STORED,
    PRIMARY KEY (order_id, line),
    CONSTRAINT invoice_order_fk FOREIGN KEY (order_id) REFERENCES public."order"(id)
);
CREATE VIEW public.user_names AS SELECT id, name FROM public.users;
CREATE MATERIALIZED VIEW sales.totals AS
    SELECT order_id, sum(amount) AS total FROM sales.invoice GROUP BY order_id;
CREATE TABLE "audit log"."Event Log" (id bigserial PRIMARY KEY, "what happened" text);
CREATE TABLE public.measure (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE public.measure_2024 PARTITION OF public.measure
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
"#;

#[test]
fn introspection_reads_relations_columns_and_keys() {
    let pg = Pg::start();
    let (_, mut client) = pg.create_db("shop");
    client.batch_execute(SCHEMA).unwrap();
    let model = introspect(&mut client).unwrap();
    let names: Vec<(&str, &str, RelationKind)> = model
        .relations
        .iter()
        .map(|r| (r.schema.as_str(), r.name.as_str(), r.kind))
        .collect();
    use RelationKind::*;
    assert_eq!(
        names,
        [
            ("audit log", "Event Log", Table),
            ("public", "2fa_codes", Table),
            ("public", "measure", PartitionedTable),
            ("public", "order", Table),
            ("public", "user_names", View),
            ("public", "users", Table),
            ("sales", "invoice", Table),
            ("sales", "totals", MaterializedView),
        ]
    );
    let users = &model.relations[5];
    let cols: Vec<(&str, &str, bool, Option<&str>)> = users
        .columns
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.sql_type.as_str(),
                c.not_null,
                c.default.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        cols,
        [
            (
                "id",
                "integer",
                true,
                Some("nextval('public.users_id_seq'::regclass)")
            ),
            ("name", "text", true, None),
            ("class", "text", false, None),
            ("mood", "public.mood", false, Some("'ok'::public.mood")),
            (
                "created_at",
                "timestamp with time zone",
                true,
                Some("now()")
            ),
        ]
    );
    assert_eq!(users.primary_key, ["id"]);
    let order = &model.relations[3];
    assert_eq!(order.columns[0].identity.as_deref(), Some("ALWAYS"));
    assert_eq!(
        order.foreign_keys,
        [ForeignKey {
            name: "order_user_id_fkey".into(),
            columns: vec!["user_id".into()],
            ref_schema: "public".into(),
            ref_relation: "users".into(),
            ref_columns: vec!["id".into()],
        }]
    );
    let invoice = &model.relations[6];
    assert_eq!(invoice.primary_key, ["order_id", "line"]);
    assert_eq!(
        invoice.columns[3].generated.as_deref(),
        Some("(amount * (2)::numeric)")
    );
    assert_eq!(invoice.columns[3].default, None);
    assert!(model.relations[4].primary_key.is_empty());
    // The model serializes (plain data).
    let json = serde_json::to_string(&model).unwrap();
    assert_eq!(serde_json::from_str::<Model>(&json).unwrap(), model);

    // Inside a caller's transaction: no search_path leaks out.
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("SET LOCAL search_path = sales, public")
        .unwrap();
    assert_eq!(introspect(&mut tx).unwrap(), model);
    let sp: String = tx.query_one("SHOW search_path", &[]).unwrap().get(0);
    assert_eq!(sp, "sales, public");
}

/// Introspection runs the same three queries for 1 relation and for 150.
#[test]
fn introspection_takes_a_fixed_number_of_queries() {
    let pg = Pg::start();
    let (_, mut client) = pg.create_db("many");
    client
        .batch_execute("CREATE TABLE t0 (id serial PRIMARY KEY)")
        .unwrap();
    let count = |client: &mut postgres::Client| -> (usize, Model) {
        let mut tx = client.transaction().unwrap();
        tx.batch_execute("SET LOCAL search_path = pg_catalog")
            .unwrap();
        let mut calls = 0;
        let model = introspect::introspect_with(&mut |sql: &str| {
            calls += 1;
            tx.query(sql, &[])
        })
        .unwrap();
        (calls, model)
    };
    let (one, small) = count(&mut client);
    assert_eq!(small.relations.len(), 1);
    let mut ddl = String::new();
    for i in 1..100 {
        ddl.push_str(&format!(
            "CREATE TABLE t{i} (id serial PRIMARY KEY, prev int REFERENCES t{}(id), label text NOT NULL DEFAULT 'x');\n",
            i - 1
        ));
    }
    for i in 0..50 {
        ddl.push_str(&format!("CREATE VIEW v{i} AS SELECT * FROM t{i};\n"));
    }
    client.batch_execute(&ddl).unwrap();
    let (many, big) = count(&mut client);
    assert_eq!(big.relations.len(), 150);
    assert_eq!((one, many), (3, 3));
    assert_eq!(introspect(&mut client).unwrap(), big);
    let t5 = big.relations.iter().find(|r| r.name == "t5").unwrap();
    assert_eq!(t5.foreign_keys[0].ref_relation, "t4");
}

const CREATE: &str = r#"
    @classmethod
    def create(cls, name: str):
        """Business logic for creating a user."""
        if not name or not name.strip():
            raise ValueError("Username cannot be empty")
        return cls(name=name).ho_insert()
"#;

/// The whole story of issue 3 with the real half-orm package.
#[test]
fn half_orm_uses_the_generated_package_and_user_code_survives() {
    let pg = Pg::start();
    let (shop_db, mut client) = pg.create_db("shop");
    client.batch_execute(SCHEMA).unwrap();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("tree");
    let conf = work.path().join("conf");
    std::fs::create_dir_all(&root).unwrap();
    write_halform_config(&conf, "shop", &pg.params(&shop_db)).unwrap();
    let py = venv_python();

    // 1. Generate: modules, inits, skeletons; all compile.
    let model = introspect(&mut client).unwrap();
    let report = generate(&model, &root, "shop", "shop").unwrap();
    let expected = [
        "shop/__init__.py",
        "shop/audit_log/Event_Log.py",
        "shop/audit_log/__init__.py",
        "shop/public/_2fa_codes.py",
        "shop/public/__init__.py",
        "shop/public/measure.py",
        "shop/public/order.py",
        "shop/public/user_names.py",
        "shop/public/users.py",
        "shop/sales/__init__.py",
        "shop/sales/invoice.py",
        "shop/sales/totals.py",
        "tests/audit_log/Event_Log/test_audit_log_Event_Log.py",
        "tests/public/_2fa_codes/test_public__2fa_codes.py",
        "tests/public/measure/test_public_measure.py",
        "tests/public/order/test_public_order.py",
        "tests/public/user_names/test_public_user_names.py",
        "tests/public/users/test_public_users.py",
        "tests/sales/invoice/test_sales_invoice.py",
        "tests/sales/totals/test_sales_totals.py",
    ];
    let expected: Vec<PathBuf> = expected.iter().map(PathBuf::from).collect();
    assert_eq!(all_files(&root), expected);
    assert_eq!(report.written, expected);
    py_compile(&py, &root);
    let users_py = read(&root, "shop/public/users.py");
    assert!(users_py.starts_with(python::HEADER), "{users_py}");
    assert!(
        users_py.contains("fields_aliases={'class': 'class_'}"),
        "{users_py}"
    );
    assert!(
        users_py.contains("mood        public.mood DEFAULT 'ok'::public.mood"),
        "{users_py}"
    );
    let order_py = read(&root, "shop/public/order.py");
    assert!(
        order_py.contains("order_user_id_fkey: (user_id) -> \"public\".\"users\" (id)"),
        "{order_py}"
    );
    assert!(
        !read(&root, "shop/public/__init__.py").contains("users"),
        "schema __init__ must not list relations (merge conflicts)"
    );

    // 2. half_orm imports the classes, inserts and selects through them.
    let out = python(
        &root,
        &conf,
        &[
            "-c",
            r#"
import json
from shop.public.users import Users
from shop.public.order import Order
from shop.public._2fa_codes import _2faCodes
from shop.public.user_names import UserNames
from shop.sales.invoice import Invoice
from shop.audit_log.Event_Log import EventLog
row = Users(name='alice', class_='admin').ho_insert()
got = [dict(r) for r in Users(name='alice').ho_select()]
order = Order(user_id=row['id'], total=12.5).ho_insert()
code = _2faCodes(code='123456', user_id=row['id']).ho_insert()
Invoice(order_id=order['id'], line=1, amount=3).ho_insert()
EventLog(what_happened='signup').ho_insert()
owner = Order(id=order['id'])._ho_fkeys['order_user_id_fkey']()
print(json.dumps({
    'fk': [type(owner) is Users, [r['name'] for r in owner.ho_select()]],
    'id': row['id'], 'got': got, 'total': str(order['total']), 'code': code['code'],
    'view': [r['name'] for r in UserNames().ho_select()],
    'events': [r['what happened'] for r in EventLog().ho_select()],
    'x2': [str(r['amount_x2']) for r in Invoice().ho_select()],
}, default=str))
"#,
        ],
    );
    let v: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["got"][0]["name"], "alice", "{v}");
    assert_eq!(v["got"][0]["class"], "admin", "{v}");
    assert_eq!(v["got"][0]["id"], v["id"], "{v}");
    assert_eq!(v["total"], "12.50", "{v}");
    assert_eq!(v["code"], "123456", "{v}");
    assert_eq!(v["view"], serde_json::json!(["alice"]), "{v}");
    assert_eq!(v["events"], serde_json::json!(["signup"]), "{v}");
    assert_eq!(v["x2"], serde_json::json!(["6.00"]), "{v}");
    // half_orm follows the foreign key to the generated class (scope import).
    assert_eq!(v["fk"], serde_json::json!([true, ["alice"]]), "{v}");

    // 3. The user's code: module level, class attributes, and the seed's
    //    `create` appended at the end of users.py.
    let module_code = "import re\n\nNAME_RE = re.compile(r'^[a-z]+$')\n";
    let class_attrs = "    KIND = 'person'\n";
    let users_py = read(&root, "shop/public/users.py");
    let edited = users_py
        .replacen(
            &format!("{}\n{}\n", regions::BEGIN, regions::END),
            &format!("{}\n{module_code}{}\n", regions::BEGIN, regions::END),
            1,
        )
        .replacen(
            &format!("    {}\n    {}\n", regions::BEGIN, regions::END),
            &format!(
                "    {}\n{class_attrs}    {}\n",
                regions::BEGIN,
                regions::END
            ),
            1,
        )
        + CREATE;
    assert_ne!(edited, users_py + CREATE);
    std::fs::write(root.join("shop/public/users.py"), &edited).unwrap();
    let user_test = "tests/public/users/test_public_users.py";
    let user_test_text = read(&root, user_test) + "\n\ndef test_mine():\n    assert True\n";
    std::fs::write(root.join(user_test), &user_test_text).unwrap();

    // 4. Schema change, regeneration: regions byte for byte, create works.
    client.batch_execute("ALTER TABLE public.users ADD COLUMN age int; CREATE TABLE sales.refund (id int PRIMARY KEY)").unwrap();
    let model = introspect(&mut client).unwrap();
    let report = generate(&model, &root, "shop", "shop").unwrap();
    assert_eq!(
        report.written,
        // sales/__init__.py does not list relations: unchanged.
        [
            "shop/public/users.py",
            "shop/sales/refund.py",
            "tests/sales/refund/test_sales_refund.py"
        ]
        .map(PathBuf::from)
    );
    let users_py = read(&root, "shop/public/users.py");
    assert!(users_py.ends_with(CREATE));
    assert!(
        users_py.contains("        age         integer\n"),
        "{users_py}"
    );
    let regions = regions::user_regions(
        &users_py,
        &[
            regions::Marker::Begin,
            regions::Marker::End,
            regions::Marker::Begin,
            regions::Marker::End,
        ],
        Path::new("users.py"),
    )
    .unwrap();
    assert_eq!(regions, [module_code, class_attrs, CREATE]);
    assert_eq!(
        read(&root, user_test),
        user_test_text,
        "a test skeleton is never rewritten"
    );
    py_compile(&py, &root);
    let out = python(
        &root,
        &conf,
        &[
            "-c",
            r#"
from shop.public.users import Users, NAME_RE
row = Users.create('bob')
assert Users.KIND == 'person' and NAME_RE.match('bob')
try:
    Users.create('  ')
    raise SystemExit('empty name accepted')
except ValueError:
    pass
Users(id=row['id']).ho_update(age=42)
print(row['name'], [r['age'] for r in Users(name='bob').ho_select()][0])
"#,
        ],
    );
    assert_eq!(out.trim(), "bob 42");

    // 5. Dropping a table removes its generated module and skeleton, not a
    //    hand-written module beside it; a vanished schema loses its folder.
    std::fs::write(
        root.join("shop/public/helpers.py"),
        "def helper():\n    return 1\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("shop/api/__pycache__")).unwrap();
    client
        .batch_execute(r#"DROP TABLE public."2fa_codes"; DROP SCHEMA "audit log" CASCADE"#)
        .unwrap();
    let model = introspect(&mut client).unwrap();
    let report = generate(&model, &root, "shop", "shop").unwrap();
    assert_eq!(
        report.removed,
        [
            "shop/audit_log/Event_Log.py",
            "shop/audit_log/__init__.py",
            "shop/public/_2fa_codes.py",
            "tests/audit_log/Event_Log/test_audit_log_Event_Log.py",
            "tests/public/_2fa_codes/test_public__2fa_codes.py",
        ]
        .map(PathBuf::from)
    );
    assert!(report.written.is_empty(), "{:?}", report.written);
    assert!(!root.join("shop/audit_log").exists());
    assert!(
        root.join("shop/api/__pycache__").exists(),
        "folders git-hop did not empty stay"
    );
    assert!(!root.join("tests/audit_log").exists());
    assert!(!root.join("tests/public/_2fa_codes").exists());
    assert_eq!(
        read(&root, "shop/public/helpers.py"),
        "def helper():\n    return 1\n"
    );
    assert!(!read(&root, "shop/public/__init__.py").contains("_2fa_codes"));

    // 6. Regenerating an unchanged schema changes no file: content and mtime.
    let past = SystemTime::now() - Duration::from_secs(3600);
    for p in all_files(&root) {
        std::fs::File::options()
            .write(true)
            .open(root.join(&p))
            .unwrap()
            .set_modified(past)
            .unwrap();
    }
    let before = snapshot(&root);
    let model = introspect(&mut client).unwrap();
    let report = generate(&model, &root, "shop", "shop").unwrap();
    assert!(
        report.written.is_empty() && report.removed.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        report.unchanged,
        all_files(&root).len() - 1,
        "every file but helpers.py"
    );
    assert_eq!(snapshot(&root), before);

    // 7. The test skeletons pass, twice (their transactions roll back).
    for _ in 0..2 {
        let out = python(
            &root,
            &conf,
            &["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        );
        assert!(out.contains("8 passed"), "{out}");
    }
    let count: i64 = client
        .query_one("SELECT count(*) FROM public.users", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 2, "alice and bob only");
}
