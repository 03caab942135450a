//! The read-backs behind the nothing-lost invariants: a direct PostgreSQL connection and a
//! JetStream stream, each with a deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;

use super::{Ack, DatabaseProbe, EventProbe, Readback};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("the effect database did not answer: {0}")]
    Database(String),
    #[error("the event stream could not be read: {0}")]
    Events(String),
    #[error("the read-backs did not finish within {0:?}")]
    Timeout(Duration),
    /// The server answers and has no such stream: nothing was ever published to it.
    #[error("{0}")]
    NoStream(String),
}

/// Reads what the acknowledgements need: counts for acknowledged ids, ids for uncertain keys,
/// and events per id.
pub async fn read(
    acks: &[Ack],
    db: &DatabaseProbe,
    db_url: &str,
    events: Option<(&EventProbe, &str)>,
    budget: Duration,
) -> Result<Readback, ProbeError> {
    let work = async {
        let ids: Vec<String> = acks
            .iter()
            .filter(|a| a.acknowledged())
            .filter_map(|a| a.id.clone())
            .collect();
        let keys: Vec<String> = acks
            .iter()
            .filter(|a| a.uncertain())
            .map(|a| a.key.clone())
            .collect();
        let (count_by_id, ids_by_key) = read_database(db, db_url, &ids, &keys).await?;
        let (events_by_id, events_note) = match events {
            Some((spec, url)) => match read_events(spec, url).await {
                Ok(counts) => (Some(counts), None),
                Err(ProbeError::NoStream(why)) => (Some(BTreeMap::new()), Some(why)),
                Err(e) => return Err(e),
            },
            None => (None, None),
        };
        Ok(Readback {
            count_by_id,
            ids_by_key,
            events_by_id,
            events_note,
        })
    };
    tokio::time::timeout(budget, work)
        .await
        .map_err(|_| ProbeError::Timeout(budget))?
}

type DbReadback = (BTreeMap<String, u64>, BTreeMap<String, Vec<String>>);

async fn read_database(
    spec: &DatabaseProbe,
    url: &str,
    ids: &[String],
    keys: &[String],
) -> Result<DbReadback, ProbeError> {
    let db = |e: tokio_postgres::Error| ProbeError::Database(e.to_string());
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(db)?;
    let conn = tokio::spawn(conn);
    let mut counts = BTreeMap::new();
    for row in client.query(&spec.count_by_id, &[&ids]).await.map_err(db)? {
        let id: String = row.try_get(0).map_err(db)?;
        let n: i64 = row.try_get(1).map_err(db)?;
        counts.insert(id, n.max(0) as u64);
    }
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in client.query(&spec.ids_by_key, &[&keys]).await.map_err(db)? {
        let key: String = row.try_get(0).map_err(db)?;
        let id: String = row.try_get(1).map_err(db)?;
        by_key.entry(key).or_default().push(id);
    }
    drop(client);
    conn.abort();
    Ok((counts, by_key))
}

/// Counts events per id on one subject of a stream, reading it from the start with an ordered
/// consumer until every message the stream held when the read began has been seen.
pub async fn read_events(
    spec: &EventProbe,
    url: &str,
) -> Result<BTreeMap<String, u64>, ProbeError> {
    let ev = |e: &dyn std::fmt::Display| ProbeError::Events(e.to_string());
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| ev(&e))?;
    let js = async_nats::jetstream::new(client);
    let mut stream = match js.get_stream(&spec.stream).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            return Err(ProbeError::NoStream(format!(
                "the server at {url} has no stream `{}`, so nothing was ever published to it",
                spec.stream
            )));
        }
        Err(e) => return Err(ev(&e)),
    };
    // Read everything up to the last sequence the stream holds now, and count our subject's
    // messages: a filtered read could not tell when it has seen the last matching one.
    let last = stream.info().await.map_err(|e| ev(&e))?.state.last_sequence;
    let mut counts = BTreeMap::new();
    if last == 0 {
        return Ok(counts);
    }
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .map_err(|e| ev(&e))?;
    let mut messages = consumer.messages().await.map_err(|e| ev(&e))?;
    loop {
        let Some(msg) = messages.next().await else {
            return Err(ProbeError::Events(format!(
                "the stream ended before sequence {last}"
            )));
        };
        let msg = msg.map_err(|e| ev(&e))?;
        let seq = msg.info().map_err(|e| ev(&e))?.stream_sequence;
        if msg.subject.as_str() == spec.subject {
            let id = serde_json::from_slice::<serde_json::Value>(&msg.payload)
                .ok()
                .and_then(|v| v.pointer(&spec.id_pointer).cloned())
                .map(|v| match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "<no id>".to_owned());
            *counts.entry(id).or_insert(0) += 1;
        }
        if seq >= last {
            break;
        }
    }
    Ok(counts)
}
