//! The typed API of the generated package against half-orm-dev 1.1.0a1's,
//! both generated for one schema (tables and a view, a foreign key, an
//! enum, arrays, json, nullable and defaulted columns); a program using it
//! through the real half-orm; mypy on the package.

use std::path::Path;
use std::process::Command;

use crate::support::{Project, patch_with};

const SCHEMA: &str = "\
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE SCHEMA shop;
CREATE TABLE person (
    id serial PRIMARY KEY, name text NOT NULL, nick varchar(20), born date, mood mood,
    tags text[] NOT NULL DEFAULT '{}', scores int[], meta jsonb, doc json,
    created timestamptz NOT NULL DEFAULT now(), ts timestamp, price numeric(10,2),
    ratio float8, active boolean DEFAULT true, uid uuid, small smallint, big bigint
);
CREATE TABLE shop.order_line (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    person_id int NOT NULL REFERENCES person (id), qty int NOT NULL DEFAULT 1, note text
);
CREATE VIEW shop.person_orders AS
    SELECT p.name, count(o.id) AS n FROM person p LEFT JOIN shop.order_line o ON o.person_id = p.id GROUP BY p.name;
";

/// Runs half-orm-dev's own code generation (`half_orm_dev.modules.generate`,
/// what `half_orm dev` runs after a rebuild) for `package` on the database
/// of the half_orm config `package` under `conf`, into `out`.
const HALF_ORM_DEV_GENERATE: &str = "\
import sys
from half_orm.model import Model
from half_orm_dev import modules

class Db: pass
class Repo: pass
package, out = sys.argv[1], sys.argv[2]
db = Db(); db.model = Model(package)
repo = Repo(); repo.name = package; repo.base_dir = out; repo.database = db
repo.with_half_orm_meta = False
modules.generate(repo)
";

fn run(python: &Path, dir: &Path, args: &[&str], conf: &Path) -> (bool, String) {
    let out = Command::new(python)
        .args(args)
        .current_dir(dir)
        .env("HALFORM_CONF_DIR", conf)
        .env("PYTHONPATH", dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("MYPY_CACHE_DIR", "/dev/null")
        .env_remove("PGDATABASE")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn typed_api_equals_half_orm_devs_works_with_half_orm_and_passes_mypy() {
    let python = crate::support::venv::dev_venv_python();
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    let pkg = dir;
    env.release(dir, &["new", "minor"]).ok();
    patch_with(
        env,
        dir,
        "0.1.0",
        "1-typed",
        &[("Patches/1-typed/01.sql", SCHEMA)],
    );
    let root = env.path(dir);
    let conf = root.join(".git/hop/halform");

    // half-orm-dev's code for the same database.
    let theirs = env.tmp.path().join("half-orm-dev");
    std::fs::create_dir_all(&theirs).unwrap();
    let script = env.tmp.path().join("hod_generate.py");
    std::fs::write(&script, HALF_ORM_DEV_GENERATE).unwrap();
    let (ok, out) = run(
        &python,
        &theirs,
        &[script.to_str().unwrap(), pkg, theirs.to_str().unwrap()],
        &conf,
    );
    assert!(ok, "{out}");
    assert!(theirs.join(pkg).join("ho_typeddicts.py").is_file(), "{out}");

    // The same public API.
    let compare =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/python/compare_typed_api.py");
    let (ok, out) = run(
        &python,
        &root,
        &[
            compare.to_str().unwrap(),
            root.to_str().unwrap(),
            theirs.to_str().unwrap(),
            pkg,
        ],
        &conf,
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("compared typeddicts=3 fields=23 bc_methods=21 inits=3 fks=1"),
        "{out}"
    );

    // A program that uses the types, through the real half-orm.
    let program = format!(
        "\
from {pkg}.public.person import Person, PublicPersonDict
from {pkg}.shop.order_line import OrderLine, ShopOrderLineDict
from {pkg}.shop.person_orders import PersonOrders


def add(name: str, tags: list[str]) -> PublicPersonDict:
    return Person(name=name, tags=tags).ho_insert()


def names() -> list[str]:
    out: list[str] = []
    for row in Person().ho_select('name', order_by='name'):
        name = row['name']
        if name is not None:
            out.append(name)
    return out


ann = add('ann', ['a', 'b'])
bob = add('bob', [])
assert ann['id'] is not None
line: ShopOrderLineDict = OrderLine(person_id=ann['id'], qty=2).ho_insert()
assert line['qty'] == 2
owner = OrderLine(id=line['id']).fk_order_line_person_id_fkey()
assert [r['name'] for r in owner.ho_select('name')] == ['ann'], list(owner)
assert Person(name='ann').ho_get()['tags'] == ['a', 'b']
assert names() == ['ann', 'bob'], names()
counts = {{r['name']: r['n'] for r in PersonOrders().ho_select()}}
assert counts == {{'ann': 1, 'bob': 0}}, counts
print('typed program ok')
"
    );
    std::fs::write(root.join("use_typed.py"), &program).unwrap();
    let (ok, out) = run(&python, &root, &["use_typed.py"], &conf);
    assert!(ok && out.contains("typed program ok"), "{out}");

    // mypy: the package and the program check; a wrong use is caught.
    let (ok, out) = run(&python, &root, &["-m", "mypy", pkg, "use_typed.py"], &conf);
    assert!(ok && out.contains("Success: no issues found"), "{out}");
    std::fs::write(
        root.join("misuse.py"),
        format!(
            "from {pkg}.public.person import Person\n\nn: int = Person(id=1).ho_get()['name']\nPerson(id=1).ho_get()['no_such_column']\n"
        ),
    )
    .unwrap();
    let (ok, out) = run(&python, &root, &["-m", "mypy", "misuse.py"], &conf);
    assert!(!ok, "{out}");
    assert!(
        out.contains("Incompatible types in assignment")
            && out.contains("\"PublicPersonDict\" has no key \"no_such_column\""),
        "{out}"
    );
}
