//! The nothing-lost read-backs against a real PostgreSQL and a real JetStream stream: effects are
//! counted from the database and the stream, not from status codes, and each broken invariant is
//! reported with the ids that break it.

mod common;

use std::time::Duration;

use testcontainers::core::ContainerPort;
use verifier::effects::probe;
use verifier::effects::{Ack, DatabaseProbe, EventProbe, nothing_lost};

use common::unique;

const COUNT_BY_ID: &str =
    "SELECT id::text, count(*) FROM orders WHERE id::text = ANY($1) GROUP BY id";
const IDS_BY_KEY: &str = "SELECT key, order_id::text FROM orders WHERE key = ANY($1)";

fn ack(key: &str, status: Option<u16>, id: Option<&str>) -> Ack {
    Ack {
        key: key.into(),
        status,
        id: id.map(Into::into),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_backs_find_lost_duplicated_and_unpublished_effects() {
    let network = unique("effects");
    let pg = common::postgres(&network, &unique("pg")).await;
    let nats = common::nats(&network, &unique("nats")).await;
    let pg_port = pg
        .get_host_port_ipv4(ContainerPort::Tcp(5432))
        .await
        .unwrap();
    let nats_port = nats
        .get_host_port_ipv4(ContainerPort::Tcp(4222))
        .await
        .unwrap();
    let db_url = format!("postgres://kit:kit@127.0.0.1:{pg_port}/kit");
    let nats_url = format!("nats://127.0.0.1:{nats_port}");

    // A table where one effect was stored twice (a duplicate the service should have prevented)
    // and one timed-out request took effect twice under the same key.
    let (client, conn) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE TABLE orders (id uuid, order_id uuid, key text);
             INSERT INTO orders VALUES
               ('00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000a', 'k-ok'),
               ('00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-00000000000b', 'k-dup'),
               ('00000000-0000-0000-0000-00000000000b', '00000000-0000-0000-0000-00000000000b', 'k-dup'),
               ('00000000-0000-0000-0000-00000000000c', '00000000-0000-0000-0000-00000000000c', 'k-timeout'),
               ('00000000-0000-0000-0000-00000000000d', '00000000-0000-0000-0000-00000000000d', 'k-timeout'),
               ('00000000-0000-0000-0000-00000000000e', '00000000-0000-0000-0000-00000000000e', 'k-silent');",
        )
        .await
        .unwrap();

    // Events: one for a, none for e, two for b; other subjects do not count.
    let js = async_nats::jetstream::new(async_nats::connect(&nats_url).await.unwrap());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    for (subject, id) in [
        ("orders.created", "a"),
        ("orders.paid", "a"),
        ("orders.created", "b"),
        ("orders.created", "b"),
    ] {
        let payload = format!(r#"{{"order_id":"00000000-0000-0000-0000-00000000000{id}"}}"#);
        js.publish(subject, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    let uuid = |c: &str| format!("00000000-0000-0000-0000-00000000000{c}");
    let acks = [
        ack("k-ok", Some(201), Some(&uuid("a"))),
        ack("k-dup", Some(201), Some(&uuid("b"))),
        ack("k-timeout", None, None),
        ack("k-lost", Some(201), Some(&uuid("f"))),
        ack("k-silent", Some(201), Some(&uuid("e"))),
        ack("k-refused", Some(422), None),
    ];
    let db = DatabaseProbe {
        url: db_url.clone(),
        count_by_id: COUNT_BY_ID.into(),
        ids_by_key: IDS_BY_KEY.into(),
    };
    let events = EventProbe {
        url: nats_url.clone(),
        stream: "ORDERS".into(),
        subject: "orders.created".into(),
        id_pointer: "/order_id".into(),
    };
    let rb = probe::read(
        &acks,
        &db,
        &db_url,
        Some((&events, &nats_url)),
        Duration::from_secs(30),
    )
    .await
    .expect("read-backs");
    let violations = nothing_lost(&acks, &rb);
    let got: Vec<_> = violations
        .iter()
        .map(|v| (v.rule, v.key.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        got,
        vec![
            ("acknowledged-exists-once", "k-dup"),
            ("acknowledged-exists", "k-lost"),
            ("uncertain-at-most-once", "k-timeout"),
            ("event-published", "k-silent"),
        ],
        "{violations:#?}"
    );
    // b's two events are not reported separately: b is already a duplicate in the database.
    assert_eq!(rb.events_by_id.as_ref().unwrap()[&uuid("b")], 2);
    assert_eq!(rb.events_by_id.as_ref().unwrap()[&uuid("a")], 1);
}
