//! The one integration-test binary: real binaries, real git with bare
//! origins, a real throwaway PostgreSQL cluster.

mod support;

mod test_ci_doc;
mod test_connection;
mod test_embedded;
mod test_env;
mod test_errors;
mod test_from_dump;
mod test_hooks;
mod test_housekeeping;
mod test_import;
mod test_init_clone;
mod test_install;
mod test_lint;
mod test_lock;
mod test_man;
mod test_patch_flow;
mod test_patch_rules;
mod test_preview;
mod test_production;
mod test_release;
mod test_seed;
mod test_shared_server;
mod test_snapshots;
mod test_templates;
mod test_tls;
mod test_typed_api;
mod test_validate;
mod test_workflow;

/// Every `test_*.rs` file must be listed above, or it silently never runs.
#[test]
fn every_test_file_is_included() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration");
    let main = std::fs::read_to_string(dir.join("main.rs")).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(module) = name
            .strip_prefix("test_")
            .and_then(|n| n.strip_suffix(".rs"))
        {
            assert!(
                main.contains(&format!("mod test_{module};")),
                "tests/integration/{name} is not in main.rs"
            );
        }
    }
}
