//! Issue 11, `serve --role`: API processes and worker processes sharing one PostgreSQL
//! database and one file store scale apart. A worker answers only `/healthz` and `/metrics`;
//! an API process runs no export itself. With SQLite, only `--role all` starts.

use exports_api::config::Role;

#[tokio::test]
async fn api_and_worker_roles_need_a_shared_postgresql_database() {
    for role in [Role::Api, Role::Worker] {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = exports_api::config::Config::for_tests(tmp.path().to_path_buf());
        cfg.role = role;
        cfg.database = None;
        let err = exports_api::app::App::build(cfg).await.err().expect("refused on SQLite");
        let text = format!("{err:#}");
        assert!(text.contains("needs a PostgreSQL database") && text.contains("--role all"), "{text}");
        assert!(!tmp.path().join("exports.db").exists(), "a refused start created the database");
    }
}
