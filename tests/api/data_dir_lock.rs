//! One server per data folder: a second one must refuse to start (its workers would take
//! over the first one's running jobs), and the folder is free again once the first stops.

use crate::helpers;
use exports_api::app::App;
use exports_api::config::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_server_on_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = helpers::spawn_app_with(dir.path().to_path_buf(), |_| {}).await;

    let err = match App::build(Config::for_tests(dir.path().to_path_buf())).await {
        Ok(_) => panic!("a second server started on the same data folder"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("another exports-api server"), "{err}");

    // the first one is unaffected
    let r = first.get("/v1/exports").send().await.unwrap();
    assert_eq!(r.status(), 200);
    first.stop().await;

    // and after it stopped, the folder can be used again
    let again = helpers::spawn_app_with(dir.path().to_path_buf(), |_| {}).await;
    assert_eq!(again.get("/v1/exports").send().await.unwrap().status(), 200);
    again.stop().await;
}
