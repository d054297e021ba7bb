//! The store's CRUD functions (teams and keys, schemas, webhook endpoints and deliveries,
//! idempotency keys, the database size) on a real PostgreSQL (a fresh database of the test
//! cluster per test), called as the app calls them: writes through `Writer` (one transaction
//! under the write lock), reads on a pooled connection. The same functions run on SQLite in
//! their unit tests and under the whole suite.

use exports_api::db::{self, deliveries, idempotency, keys, pg, schemas, webhooks, DbError, Pool, Writer};
use exports_api::domain::export::{CsvOptions, ExportStatus};
use exports_api::domain::schema::SchemaDef;

use crate::helpers::{pg_client, pg_database};

/// A migrated database of the test cluster: its read pool and its writer.
fn store(test: &str) -> Option<(Pool, Writer, String)> {
    let url = pg_database(test)?;
    let pool = pg::open(&url, 4).unwrap();
    Some((Pool::Pg(pool.clone()), Writer::postgres(pool), url))
}

fn write<T: Send + 'static>(w: &Writer, f: impl FnOnce(&dyn db::Sql) -> Result<T, DbError> + Send + 'static) -> T {
    w.run(f).unwrap()
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[test]
fn teams_and_keys() {
    let Some((pool, w, _)) = store("postgres_crud::teams_and_keys") else { return };
    let acme = write(&w, |c| keys::create_team(c, "acme"));
    // a team named like another's id: the id wins
    let twin = write(&w, {
        let name = acme.id.clone();
        move |c| keys::create_team(c, &name)
    });
    let c = pool.get().unwrap();
    assert_eq!(keys::find_team(&c, "acme").unwrap(), Some(acme.clone()));
    assert_eq!(keys::find_team(&c, &acme.id).unwrap(), Some(acme.clone()));
    assert_eq!(keys::find_team(&c, &twin.id).unwrap(), Some(twin.clone()));
    assert_eq!(keys::find_team(&c, "nope").unwrap(), None, "a name that is no uuid finds nothing, no error");
    assert!(keys::team_exists_by_name(&c, "acme").unwrap());
    assert!(!keys::team_exists_by_name(&c, "ACME").unwrap(), "names compare exactly");
    assert_eq!(keys::list_teams(&c).unwrap(), vec![acme.clone(), twin.clone()], "oldest first");
    assert!(write(&w, |c| Ok(keys::create_team(c, "acme").is_err())), "names are unique");

    let (a, t) = (acme.id.clone(), twin.id.clone());
    let (k1, k2) = (keys::generate_key(), keys::generate_key());
    let (s1, s2) = (k1.clone(), k2.clone());
    let (id1, _id2) =
        write(&w, move |c| Ok((keys::add_key(c, &a, Some("deploy"), &s1)?, keys::add_key(c, &t, None, &s2)?)));
    assert_eq!(keys::team_for_digest(&c, &keys::hash_key(&k1)).unwrap(), Some(acme.clone()));
    assert_eq!(keys::team_for_digest(&c, &keys::hash_key(&k2)).unwrap(), Some(twin.clone()));
    assert_eq!(keys::team_for_digest(&c, &keys::hash_key("exp_unknown")).unwrap(), None);
    assert!(keys::key_exists(&c, &k1).unwrap() && !keys::key_exists(&c, "exp_unknown").unwrap());
    assert_eq!(keys::count_keys(&c).unwrap(), 2);

    let all = keys::list_keys(&c, None).unwrap();
    assert_eq!(all.len(), 2);
    let first = &all[0];
    assert_eq!(
        (first.id.as_str(), first.team_id.as_str(), first.team_name.as_str()),
        (id1.as_str(), acme.id.as_str(), "acme")
    );
    assert_eq!((first.name.as_deref(), first.prefix.as_str(), first.revoked_at), (Some("deploy"), &k1[..8], None));
    assert!(first.created_at > 0);
    let of_twin = keys::list_keys(&c, Some(&twin.id)).unwrap();
    assert_eq!(of_twin.len(), 1);
    assert_eq!((of_twin[0].team_id.as_str(), of_twin[0].name.as_deref()), (twin.id.as_str(), None));

    let id = id1.clone();
    assert!(write(&w, move |c| keys::revoke_key(c, &id)));
    assert!(!write(&w, |c| keys::revoke_key(c, "not-a-key-id")), "an id that is no uuid is no key, no error");
    assert!(!write(&w, |c| keys::revoke_key(c, &new_id())));
    assert_eq!(keys::team_for_digest(&c, &keys::hash_key(&k1)).unwrap(), None, "a revoked key names no team");
    assert!(keys::key_exists(&c, &k1).unwrap(), "a revoked key is still stored");
    let revoked = keys::list_keys(&c, Some(&acme.id)).unwrap();
    assert!(revoked[0].revoked_at.is_some());
}

fn schema(id: &str, team: &str, name: &str) -> schemas::SchemaRow {
    let definition: SchemaDef = serde_json::from_value(serde_json::json!({
        "fields": [{"key": "n", "type": "number"}]
    }))
    .unwrap();
    schemas::SchemaRow {
        id: id.into(),
        team_id: team.into(),
        name: name.into(),
        description: Some("d".into()),
        definition,
        created_at: 10,
        updated_at: 10,
    }
}

#[test]
fn schemas_get_update_names_and_delete() {
    let Some((pool, w, url)) = store("postgres_crud::schemas") else { return };
    let (team, other) = write(&w, |c| Ok((keys::create_team(c, "a")?.id, keys::create_team(c, "b")?.id)));
    let (s1, s2) = (new_id(), new_id());
    let rows = [schema(&s1, &team, "first"), schema(&s2, &team, "second")];
    write(&w, move |c| rows.iter().try_for_each(|r| schemas::insert(c, r)));

    let c = pool.get().unwrap();
    let got = schemas::get(&c, &team, &s1).unwrap().expect("own schema");
    assert_eq!((got.name.as_str(), got.description.as_deref(), got.created_at), ("first", Some("d"), 10));
    assert_eq!(
        serde_json::to_value(&got.definition).unwrap(),
        serde_json::to_value(&schema("", "", "").definition).unwrap()
    );
    assert!(schemas::get(&c, &other, &s1).unwrap().is_none(), "another team's schema is missing");
    assert!(schemas::get(&c, &team, "not-a-uuid").unwrap().is_none(), "no uuid: missing, no error");
    assert!(schemas::get(&c, &team, &s1.to_uppercase()).unwrap().is_none(), "ids are the lowercase text, as on SQLite");
    assert_eq!(schemas::get_any(&c, &s2).unwrap().unwrap().team_id, team);
    assert!(schemas::get_any(&c, "x").unwrap().is_none());
    let names = schemas::names(&c, &team, &[s2.clone(), new_id(), "x".into(), s1.clone()]).unwrap();
    assert_eq!(names, vec![(s2.clone(), "second".into()), (s1.clone(), "first".into())]);

    let mut changed = got.clone();
    changed.name = "renamed".into();
    changed.description = None;
    changed.updated_at = 20;
    let again = changed.clone();
    assert!(write(&w, move |c| schemas::update(c, &again)));
    let mut elsewhere = changed.clone();
    elsewhere.team_id = other.clone();
    assert!(!write(&w, move |c| schemas::update(c, &elsewhere)), "another team's schema is not changed");
    let now = schemas::get(&c, &team, &s1).unwrap().unwrap();
    assert_eq!((now.name.as_str(), now.description, now.created_at, now.updated_at), ("renamed", None, 10, 20));

    // an unreadable definition is a corrupt row, named
    pg_client(&url)
        .execute(
            "UPDATE schemas SET definition = '{\"fields\": 3}' WHERE id = $1",
            &[&s2.parse::<uuid::Uuid>().unwrap()],
        )
        .unwrap();
    match schemas::get_any(&c, &s2) {
        Err(DbError::Corrupt { table: "schemas", id, what }) => {
            assert!(id == s2 && what.contains("definition"), "{what}")
        }
        other => panic!("an unreadable definition read as {other:?}"),
    }

    // in use by a result and an export: 409's counts; then deleted
    let mut pc = pg_client(&url);
    let (tid, sid) = (team.parse::<uuid::Uuid>().unwrap(), s1.parse::<uuid::Uuid>().unwrap());
    pc.execute(
        "INSERT INTO results (id, team_id, schema_id, extraction, created_at, updated_at) VALUES ($1, $2, $3, '{}', 1, 1)",
        &[&uuid::Uuid::now_v7(), &tid, &sid],
    )
    .unwrap();
    pc.execute(
        "INSERT INTO exports (id, team_id, schema_id, status, start_ms, end_ms, options, created_at, updated_at)
         VALUES ($1, $2, $3, 'PENDING', 0, 1, '{}', 1, 1)",
        &[&uuid::Uuid::now_v7(), &tid, &sid],
    )
    .unwrap();
    let (t, s) = (team.clone(), s1.clone());
    assert_eq!(write(&w, move |c| schemas::delete(c, &t, &s)), schemas::DeleteOutcome::InUse(1, 1));
    pc.batch_execute("DELETE FROM exports; DELETE FROM results").unwrap();
    let (t, s) = (other.clone(), s1.clone());
    assert_eq!(write(&w, move |c| schemas::delete(c, &t, &s)), schemas::DeleteOutcome::NotFound);
    let t = team.clone();
    assert_eq!(write(&w, move |c| schemas::delete(c, &t, "x")), schemas::DeleteOutcome::NotFound);
    let (t, s) = (team.clone(), s1.clone());
    assert_eq!(write(&w, move |c| schemas::delete(c, &t, &s)), schemas::DeleteOutcome::Deleted);
    assert!(schemas::get(&c, &team, &s1).unwrap().is_none());
}

fn endpoint(team: &str, url: &str) -> webhooks::EndpointRow {
    webhooks::EndpointRow {
        id: new_id(),
        team_id: team.into(),
        url: url.into(),
        events: vec!["export.completed".into()],
        description: None,
        secret: "whsec_first".into(),
        created_at: 5,
        updated_at: 5,
    }
}

/// An event of an export and one pending delivery per endpoint, as `deliveries::enqueue`
/// leaves them (written beside the code: enqueue reads the export through db::exports).
fn queue_event(url: &str, team: &str, endpoints: &[&str], export: &str, created_at: i64) -> String {
    let event = uuid::Uuid::now_v7();
    let mut pc = pg_client(url);
    pc.execute(
        "INSERT INTO webhook_events (id, team_id, type, export_id, export, created_at)
         VALUES ($1, $2, 'export.completed', $3, $4, $5)",
        &[&event, &team.parse::<uuid::Uuid>().unwrap(), &uuid::Uuid::now_v7(), &export, &created_at],
    )
    .unwrap();
    for e in endpoints {
        pc.execute(
            "INSERT INTO webhook_deliveries (event_id, endpoint_id, status, next_attempt_at, created_at, updated_at)
             VALUES ($1, $2, 'pending', $3, $3, $3)",
            &[&event, &e.parse::<uuid::Uuid>().unwrap(), &created_at],
        )
        .unwrap();
    }
    event.to_string()
}

fn export_json(team: &str) -> String {
    serde_json::to_string(&db::exports::ExportRow {
        id: new_id(),
        team_id: team.into(),
        schema_id: new_id(),
        schema_name: Some("s".into()),
        status: ExportStatus::Completed,
        start_ms: 0,
        end_ms: 1,
        expand_array: None,
        options: CsvOptions::default(),
        row_count: Some(3),
        results_done: Some(3),
        results_total: Some(3),
        file_size: Some(42),
        error: None,
        attempts: 1,
        created_at: 1,
        updated_at: 2,
        completed_at: Some(2),
    })
    .unwrap()
}

#[test]
fn webhook_endpoints_and_their_delivery_queue() {
    let Some((pool, w, url)) = store("postgres_crud::webhooks") else { return };
    let (team, other) = write(&w, |c| Ok((keys::create_team(c, "a")?.id, keys::create_team(c, "b")?.id)));
    let (e1, e2) = (endpoint(&team, "http://127.0.0.1:9/one"), endpoint(&team, "http://127.0.0.1:9/two"));
    let (id1, id2) = (e1.id.clone(), e2.id.clone());
    write(&w, move |c| {
        webhooks::insert(c, &e1)?;
        webhooks::insert(c, &e2)
    });
    let c = pool.get().unwrap();
    let got = webhooks::get(&c, &team, &id1).unwrap().expect("own endpoint");
    assert_eq!(
        (got.url.as_str(), got.events.clone(), got.secret.as_str()),
        ("http://127.0.0.1:9/one", vec!["export.completed".to_string()], "whsec_first")
    );
    assert!(webhooks::get(&c, &other, &id1).unwrap().is_none(), "another team's endpoint is missing");
    let mut all: Vec<_> = webhooks::all_of_team(&c, &team).unwrap().into_iter().map(|e| e.id).collect();
    all.sort();
    let mut want = vec![id1.clone(), id2.clone()];
    want.sort();
    assert_eq!(all, want);
    assert!(webhooks::all_of_team(&c, &other).unwrap().is_empty());

    let (t, i) = (team.clone(), id1.clone());
    let rotated = write(&w, move |c| webhooks::set_secret(c, &t, &i, "whsec_second", 9)).expect("rotated");
    assert_eq!((rotated.secret.as_str(), rotated.updated_at, rotated.created_at), ("whsec_second", 9, 5));
    let (t, i) = (other.clone(), id1.clone());
    assert!(write(&w, move |c| webhooks::set_secret(c, &t, &i, "whsec_x", 10)).is_none());

    // the queue: two events for both endpoints, a third whose stored export is damaged
    let export = export_json(&team);
    let ev1 = queue_event(&url, &team, &[&id1, &id2], &export, 100);
    let _ev2 = queue_event(&url, &team, &[&id1, &id2], &export, 200);
    let _bad = queue_event(&url, &team, &[&id1], "{not json", 300);
    let mut due = deliveries::due_endpoints(&c).unwrap();
    due.sort();
    let mut expect = vec![(id1.clone(), 100), (id2.clone(), 100)];
    expect.sort();
    assert_eq!(due, expect);
    let picked = deliveries::due_for_endpoint(&c, &id1, 250, 10).unwrap();
    assert_eq!(picked.len(), 2, "due at 250: the first two");
    let d = picked[0].as_ref().expect("readable");
    assert_eq!(
        (d.endpoint_id.as_str(), d.url.as_str(), d.secret.as_str()),
        (id1.as_str(), "http://127.0.0.1:9/one", "whsec_second")
    );
    assert_eq!(
        (d.event_id.as_str(), d.event_type.as_str(), d.event_created_at, d.attempts),
        (ev1.as_str(), "export.completed", 100, 0)
    );
    assert_eq!((d.export.row_count, d.export.team_id.as_str()), (Some(3), team.as_str()));
    assert_eq!(deliveries::due_for_endpoint(&c, &id1, 250, 1).unwrap().len(), 1, "the limit holds");
    let all = deliveries::due_for_endpoint(&c, &id1, 1000, 10).unwrap();
    let damaged = all[2].as_ref().err().expect("the damaged event is reported");
    assert!(matches!(damaged.1, DbError::Corrupt { table: "webhook_events", .. }), "{:?}", damaged.1);

    // attempts: a retry, a success, a failure; a delivery already finished is not counted again
    let (first, second, bad) = (d.id, picked[1].as_ref().ok().unwrap().id, damaged.0);
    let retry = deliveries::Attempt {
        status: deliveries::PENDING,
        next_attempt_at: Some(500),
        status_code: Some(503),
        error: Some("503".into()),
    };
    assert!(write(&w, move |c| deliveries::record_attempt(c, first, &retry)));
    let ok = deliveries::Attempt {
        status: deliveries::SUCCEEDED,
        next_attempt_at: None,
        status_code: Some(204),
        error: None,
    };
    let ok2 = ok.clone();
    assert!(write(&w, move |c| deliveries::record_attempt(c, second, &ok)));
    assert!(!write(&w, move |c| deliveries::record_attempt(c, second, &ok2)), "finished: not counted twice");
    let failed = deliveries::Attempt {
        status: deliveries::FAILED,
        next_attempt_at: None,
        status_code: None,
        error: Some("damaged".into()),
    };
    assert!(write(&w, move |c| deliveries::record_attempt(c, bad, &failed)));
    let recent = deliveries::recent(&c, &id1, 10).unwrap();
    assert_eq!(recent.iter().map(|r| r.id).collect::<Vec<_>>(), vec![bad, second, first], "newest first");
    let r = &recent[2];
    assert_eq!(
        (r.status.as_str(), r.attempts, r.last_status_code, r.next_attempt_at),
        ("pending", 1, Some(503), Some(500))
    );
    assert_eq!(
        (r.event_id.as_str(), r.event_type.as_str(), r.last_error.as_deref()),
        (ev1.as_str(), "export.completed", Some("503"))
    );
    assert_eq!((recent[1].status.as_str(), recent[1].last_status_code), ("succeeded", Some(204)));
    assert_eq!(deliveries::recent(&c, &id1, 1).unwrap().len(), 1);
    assert_eq!(deliveries::due_endpoints(&c).unwrap().into_iter().find(|d| d.0 == id1).map(|d| d.1), Some(500));

    // the sweep drops finished deliveries older than the cutoff, and events left without any
    let far = exports_api::domain::time::now_ms() + 60_000;
    assert_eq!(write(&w, move |c| deliveries::sweep(c, far)), 2);
    let left: i64 = pg_client(&url).query_one("SELECT count(*) FROM webhook_events", &[]).unwrap().get(0);
    assert_eq!(left, 2, "the damaged event had only its failed delivery; the others still have pending ones");

    // deleting an endpoint drops its queue; another team cannot delete it
    let (t, i) = (other.clone(), id1.clone());
    assert!(!write(&w, move |c| webhooks::delete(c, &t, &i)));
    let (t, i) = (team.clone(), id1.clone());
    assert!(write(&w, move |c| webhooks::delete(c, &t, &i)));
    assert!(webhooks::get(&c, &team, &id1).unwrap().is_none());
    assert!(deliveries::recent(&c, &id1, 10).unwrap().is_empty());
    assert_eq!(deliveries::due_endpoints(&c).unwrap(), vec![(id2.clone(), 100)]);
}

/// The unit test of db/idempotency.rs, on PostgreSQL: a reservation of this run is in use;
/// one left by a run that died is taken over; a kept answer is in use until it expires; a
/// released key is free; the sweep deletes by age.
#[test]
fn idempotency_reservations_answers_expiry_and_dead_runs() {
    use idempotency::{
        delete_expired, finish, get, release, reserve, KeyedRequest, Reservation, StoredAnswer, RESERVATION_LEASE_MS,
    };
    let Some((pool, w, _)) = store("postgres_crud::idempotency") else { return };
    let team = new_id();
    let request = move |body_hash: &str| KeyedRequest {
        team_id: team.clone(),
        key: "k".into(),
        method: "POST".into(),
        path: "/v1/exports".into(),
        body_hash: body_hash.into(),
    };
    let answer =
        || StoredAnswer { status: 201, content_type: Some("application/json".into()), body: b"{\"a\":1}".to_vec() };
    let req = request("h");
    let t = req.team_id.clone();
    let r = req.clone();
    assert!(matches!(write(&w, move |c| reserve(c, &r, "run-1", 1000, 0)), Reservation::Reserved));
    let r = req.clone();
    match write(&w, move |c| reserve(c, &r, "run-1", 1001, 0)) {
        Reservation::Existing(k) => assert!(k.answer.is_none(), "in flight"),
        r => panic!("{r:?}"),
    }
    // another replica's reservation is in use until its lease ends, then taken over
    let r = req.clone();
    match write(&w, move |c| reserve(c, &r, "run-2", 999 + RESERVATION_LEASE_MS, 0)) {
        Reservation::Existing(k) => assert!(k.answer.is_none() && k.run_id == "run-1", "in flight on another replica"),
        r => panic!("{r:?}"),
    }
    let r = req.clone();
    let later = 1001 + RESERVATION_LEASE_MS;
    assert!(matches!(write(&w, move |c| reserve(c, &r, "run-2", later, 0)), Reservation::Reserved), "run-1 died");
    let r = req.clone();
    assert!(!write(&w, move |c| finish(c, &r, "run-1", &answer())), "run-1 no longer holds it");
    let r = req.clone();
    assert!(write(&w, move |c| finish(c, &r, "run-2", &answer())));
    let r = req.clone();
    match write(&w, move |c| reserve(c, &r, "run-3", 1003, 0)) {
        Reservation::Existing(k) => {
            let a = k.answer.unwrap();
            assert_eq!(
                (a.status, a.content_type.as_deref(), a.body.as_slice()),
                (201, Some("application/json"), &b"{\"a\":1}"[..])
            );
            assert_eq!(
                (k.method.as_str(), k.path.as_str(), k.body_hash.as_str(), k.run_id.as_str()),
                ("POST", "/v1/exports", "h", "run-2")
            );
        }
        r => panic!("{r:?}"),
    }
    let tt = t.clone();
    assert!(!write(&w, move |c| release(c, &tt, "k", "run-2")), "a kept answer is not released");
    let c = pool.get().unwrap();
    assert!(get(&c, &t, "k", later + 1).unwrap().is_none(), "older than `since`: gone");
    let other = request("other");
    assert!(matches!(write(&w, move |c| reserve(c, &other, "run-3", later + 5000, later + 1)), Reservation::Reserved));
    let k = get(&c, &t, "k", 0).unwrap().unwrap();
    assert!(k.answer.is_none() && k.body_hash == "other", "the expired answer is replaced, not kept");
    let tt = t.clone();
    assert!(write(&w, move |c| release(c, &tt, "k", "run-3")));
    assert!(get(&c, &t, "k", 0).unwrap().is_none());
    let r = req.clone();
    write(&w, move |c| reserve(c, &r, "run-3", 6000, 0));
    assert_eq!(write(&w, |c| delete_expired(c, 6000)), 0);
    assert_eq!(write(&w, |c| delete_expired(c, 6001)), 1);
}

#[test]
fn the_database_size_is_postgres_own() {
    let Some((pool, w, _)) = store("postgres_crud::database_size") else { return };
    let c = pool.get().unwrap();
    let before = db::database_size(&c).unwrap();
    assert!(before > 1_000_000, "an empty database already has its catalogs: {before}");
    // a table's worth of rows shows (PostgreSQL counts whole 8 KiB pages)
    let team = write(&w, |c| keys::create_team(c, "a")).id;
    let rows: Vec<_> = (0..400).map(|i| schema(&new_id(), &team, &format!("s{i}"))).collect();
    write(&w, move |c| rows.iter().try_for_each(|r| schemas::insert(c, r)));
    let after = db::database_size(&c).unwrap();
    assert!(after > before, "{after} <= {before}");

    // SQLite's is its file's and its WAL's, wherever the file is
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elsewhere.db");
    let lite = Pool::Lite(db::open(&path, 1, std::time::Duration::from_secs(5)).unwrap());
    let files =
        ["elsewhere.db", "elsewhere.db-wal"].map(|f| std::fs::metadata(dir.path().join(f)).map_or(0, |m| m.len()));
    assert!(files[0] > 0, "{files:?}");
    assert_eq!(db::database_size(&lite.get().unwrap()).unwrap(), files[0] + files[1]);
}

/// Two replicas (two pools and writers on one database) claiming the same due deliveries at
/// once: each is claimed by exactly one; a claimed delivery is not due until its lease ends,
/// then it is claimable again (its process died: at least once).
#[test]
fn each_due_delivery_is_claimed_by_one_replica() {
    let Some((pool, w, url)) = store("postgres_crud::claims") else { return };
    let team = write(&w, |c| keys::create_team(c, "a")).id;
    let e = endpoint(&team, "http://127.0.0.1:9/x");
    let id = e.id.clone();
    write(&w, move |c| webhooks::insert(c, &e));
    let export = export_json(&team);
    for t in 0..20 {
        queue_event(&url, &team, &[&id], &export, 100 + t);
    }
    let c = pool.get().unwrap();
    let due: Vec<i64> =
        deliveries::due_for_endpoint(&c, &id, 1000, 100).unwrap().into_iter().map(|d| d.unwrap().id).collect();
    assert_eq!(due.len(), 20);

    let replicas: Vec<Writer> = (0..2).map(|_| Writer::postgres(pg::open(&url, 2).unwrap())).collect();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(replicas.len()));
    let claims: Vec<Vec<i64>> = std::thread::scope(|s| {
        let handles: Vec<_> = replicas
            .iter()
            .map(|r| {
                let (ids, barrier) = (due.clone(), barrier.clone());
                s.spawn(move || {
                    barrier.wait();
                    // claimed one at a time, as dispatches do, interleaving with the other replica
                    ids.iter().flat_map(|&i| write(r, move |c| deliveries::claim(c, &[i], 1000, 61_000))).collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = claims.concat();
    all.sort();
    assert_eq!(all, due, "every delivery claimed once, by one replica: {claims:?}");
    assert!(deliveries::due_for_endpoint(&c, &id, 1000, 100).unwrap().is_empty(), "claimed: not due");
    assert_eq!(deliveries::due_endpoints(&c).unwrap(), vec![(id.clone(), 61_000)], "due again when the lease ends");
    let again = due.clone();
    assert_eq!(write(&w, move |c| deliveries::claim(c, &again, 61_000, 121_000)), due, "the lease over: claimable");
    // an outcome recorded ends it
    let first = due[0];
    let ok = deliveries::Attempt {
        status: deliveries::SUCCEEDED,
        next_attempt_at: None,
        status_code: Some(200),
        error: None,
    };
    assert!(write(&w, move |c| deliveries::record_attempt(c, first, &ok)));
    assert!(write(&w, move |c| deliveries::claim(c, &[first], 200_000, 260_000)).is_empty(), "finished: not claimed");
}

/// The first start's key setup on PostgreSQL, as `serve` runs it (on the writer): with no key
/// configured, team `default` and one printed key, once; a configured key is added to team
/// `default` once (a second start adds nothing).
#[test]
fn first_start_keys() {
    use exports_api::bootstrap::ensure_keys;
    let Some((pool, w, _)) = store("postgres_crud::first_start_keys") else { return };
    let made = write(&w, |c| ensure_keys(c, None)).expect("a key made and printed");
    assert_eq!(write(&w, |c| ensure_keys(c, None)), None, "made once");
    let c = pool.get().unwrap();
    let default = keys::team_for_digest(&c, &keys::hash_key(&made)).unwrap().expect("the printed key works");
    assert_eq!(default.name, "default");

    for _ in 0..2 {
        assert_eq!(write(&w, |c| ensure_keys(c, Some("exp_configured-key"))), None, "a configured key is not printed");
    }
    assert_eq!(keys::team_for_digest(&c, &keys::hash_key("exp_configured-key")).unwrap(), Some(default.clone()));
    assert_eq!(keys::count_keys(&c).unwrap(), 2, "the configured key is stored once");
    assert_eq!(keys::list_teams(&c).unwrap(), vec![default]);
}
