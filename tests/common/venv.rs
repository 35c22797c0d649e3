//! The Python environment of the tests that run generated half_orm code:
//! a venv with the real `half-orm` package from PyPI and pytest, made once
//! under `target/hop-python/` and reused. Shared by the codegen unit tests
//! and the integration tests (included with `#[path]`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The pinned half_orm release the generated code is checked against.
pub const HALF_ORM: &str = "half-orm==1.1.0";

/// half-orm-dev, whose generated code git-hop's is compared with, and the
/// type checker the generated package is checked with.
pub const HALF_ORM_DEV: &str = "half-orm-dev==1.1.0a1";
pub const MYPY: &str = "mypy==2.4.1";

/// `<target>/hop-python/<pinned>`: a venv with half-orm and pytest, made
/// once (in a temporary folder renamed into place, so concurrent test runs
/// never see half a venv) and reused by later runs.
pub fn venv_python() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| make(&HALF_ORM.replace("==", "-"), &[HALF_ORM, "pytest"]))
        .clone()
}

/// A venv with half-orm-dev 1.1.0a1 (and the half-orm it runs on) and mypy.
pub fn dev_venv_python() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        make(
            &format!(
                "{}-{}",
                HALF_ORM_DEV.replace("==", "-"),
                MYPY.replace("==", "-")
            ),
            &[HALF_ORM_DEV, HALF_ORM, MYPY],
        )
    })
    .clone()
}

fn make(name: &str, packages: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf(); // target/debug/deps/x
    let base = target.join("hop-python");
    let venv = base.join(name);
    let python = venv.join("bin/python");
    if venv.join("ok").exists() {
        fix_scripts(&venv);
        return python;
    }
    std::fs::create_dir_all(&base).unwrap();
    let tmp = base.join(format!("tmp-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let started = std::time::Instant::now();
    let st = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&tmp)
        .status()
        .unwrap();
    assert!(st.success(), "python3 -m venv failed");
    let out = Command::new(tmp.join("bin/python"))
        .args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
        .args(packages)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(tmp.join("ok"), format!("{:?}\n", started.elapsed())).unwrap();
    if std::fs::rename(&tmp, &venv).is_err() {
        // Another run won the race; use its venv.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    fix_scripts(&venv);
    eprintln!("venv {name} made in {:?}", started.elapsed());
    python
}

/// pip writes the venv's path into the `#!` line of its scripts (`pytest`,
/// `half_orm`): the temporary folder's, made before the rename. Points
/// those lines at `venv`'s python (idempotent; a script already right is
/// left alone).
fn fix_scripts(venv: &std::path::Path) {
    let python = venv.join("bin/python");
    let Ok(entries) = std::fs::read_dir(venv.join("bin")) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Some((first, rest)) = text.split_once('\n') else {
            continue;
        };
        let Some(interp) = first.strip_prefix("#!") else {
            continue;
        };
        if interp.ends_with("/bin/python") && std::path::Path::new(interp) != python {
            let fixed = format!("#!{}\n{rest}", python.display());
            let tmp = path.with_extension("fix");
            if std::fs::write(&tmp, fixed).is_ok() {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755));
                let _ = std::fs::rename(&tmp, &path);
            }
        }
    }
}
