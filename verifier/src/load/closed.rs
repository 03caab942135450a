//! Closed model: virtual users run journeys back to back, pausing for the journey's think
//! time between its steps (not after the last), on goose
//! embedded as a library. Every step records into the same [`Collector`] as the open
//! model; goose's own metrics are switched off.
//!
//! Latency here is service time as each user saw it. A closed model waits for the target
//! by design, so it cannot show coordinated omission; gate latency on the open model.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::*;

use super::cpu::CpuMark;
use super::request::classify_chain;
use super::{Collector, EngineReport, Plan, Sent, Stop, capture_headers, capture_json};
use crate::record::Outcome;
use crate::scenario::{Load, Method, UserPhase};

/// Captured values of the user's current journey, kept in goose's per-user session data.
#[derive(Debug, Default, Clone)]
struct Session {
    vars: HashMap<String, String>,
    /// A step failed: skip the rest of this iteration, which depends on its captures.
    broken: bool,
}

/// goose's test plan: `users,seconds;...`, each step reaching its user count linearly.
pub fn test_plan(phases: &[UserPhase]) -> String {
    let mut cur = 0u32;
    let mut steps = Vec::new();
    let secs = |d: Duration| d.as_secs_f64().round() as u64;
    for p in phases {
        match p {
            UserPhase::Ramp { users, duration } => {
                steps.push(format!("{users},{}s", secs(duration.0)));
                cur = *users;
            }
            UserPhase::Steady { duration } => steps.push(format!("{cur},{}s", secs(duration.0))),
            UserPhase::Spike { users, duration } => {
                steps.push(format!("{users},0s"));
                steps.push(format!("{users},{}s", secs(duration.0)));
                steps.push(format!("{cur},0s"));
            }
        }
    }
    // goose keeps users running until cancelled unless the plan ends at zero users.
    if cur != 0 {
        steps.push("0,0s".to_owned());
    }
    steps.join(";")
}

fn goose_method(m: Method) -> GooseMethod {
    match m {
        Method::Get => GooseMethod::Get,
        Method::Post => GooseMethod::Post,
        Method::Put => GooseMethod::Put,
        Method::Patch => GooseMethod::Patch,
        Method::Delete => GooseMethod::Delete,
        Method::Head => GooseMethod::Head,
    }
}

/// Runs the closed model to the end of its phases or until `stop` fires.
pub async fn run(
    plan: Arc<Plan>,
    collector: Arc<Collector>,
    stop: Stop,
) -> Result<EngineReport, String> {
    run_from(plan, collector, stop, 0).await
}

/// [`run`] with the `${seq}` counter starting at `seq_start` (a shard's own space). A shard's
/// part of the users is in the plan's phases already.
pub async fn run_from(
    plan: Arc<Plan>,
    collector: Arc<Collector>,
    stop: Stop,
    seq_start: u64,
) -> Result<EngineReport, String> {
    let Load::Closed(closed) = &plan.load else {
        return Err("the closed engine needs `load: closed`".into());
    };
    crate::logging::install();
    let seq = Arc::new(AtomicU64::new(seq_start));
    let started = Arc::new(AtomicU64::new(0));
    // A pause never outlasts the plan: goose waits for every user's transaction to return
    // before it ends, and a user still thinking at the end has nothing left to send.
    let end = Instant::now() + plan.planned;

    let mut attack = GooseAttack::initialize_with_config(GooseConfiguration::default())
        .map_err(|e| format!("goose: {e:?}"))?;
    for (ji, j) in plan.journeys.iter().enumerate() {
        // Think time is not goose's wait time: goose waits after every transaction, the last
        // of a journey included, and the scenario format pauses only between steps. The pause
        // is taken in `step`, before every step but the first.
        let mut sc = Scenario::new(&j.name)
            .set_weight(j.weight as usize)
            .map_err(|e| format!("goose: {e:?}"))?;
        for si in 0..j.steps.len() {
            let (plan, collector, seq, started, stop) = (
                plan.clone(),
                collector.clone(),
                seq.clone(),
                started.clone(),
                stop.clone(),
            );
            let f: TransactionFunction = Arc::new(move |user: &mut GooseUser| {
                let (plan, collector, seq, started, stop) = (
                    plan.clone(),
                    collector.clone(),
                    seq.clone(),
                    started.clone(),
                    stop.clone(),
                );
                Box::pin(async move {
                    let ctx = StepContext {
                        plan: &plan,
                        collector: &collector,
                        seq: &seq,
                        started: &started,
                        stop: &stop,
                        end,
                    };
                    step(user, &ctx, ji, si).await;
                    Ok(())
                })
            });
            sc = sc.register_transaction(Transaction::new(f).set_name(&format!("{si}")));
        }
        attack = attack.register_scenario(sc);
    }
    let timeout = format!("{}", plan.timeout.as_secs_f64());
    let attack = attack
        .set_default(GooseDefault::Host, plan.target.base.as_str())
        .and_then(|a| a.set_default(GooseDefault::TestPlan, test_plan(&closed.phases).as_str()))
        .and_then(|a| a.set_default(GooseDefault::Timeout, timeout.as_str()))
        .and_then(|a| a.set_default(GooseDefault::NoTelnet, true))
        .and_then(|a| a.set_default(GooseDefault::NoMetrics, true))
        .and_then(|a| a.set_default(GooseDefault::NoPrintMetrics, true))
        .and_then(|a| a.set_default(GooseDefault::NoErrorSummary, true))
        .and_then(|a| a.set_default(GooseDefault::NoGzip, true))
        .and_then(|a| a.set_default(GooseDefault::Quiet, 1usize))
        .map_err(|e| format!("goose: {e:?}"))?;

    goose::reset_killswitch();
    let watcher = {
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.stopped().await;
            goose::trigger_killswitch("verifier stop");
        })
    };
    let cpu = CpuMark::now();
    // goose's run is bounded by its test plan; the outer timeout only guards against a
    // goose that fails to stop on its own.
    let bound = plan.planned + plan.timeout + Duration::from_secs(10);
    let result = tokio::time::timeout(bound, attack.execute()).await;
    watcher.abort();
    let (cpu_s, cores) = cpu.since();
    match result {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(format!("goose: {e:?}")),
        Err(_) => {
            goose::trigger_killswitch("verifier timeout");
            return Err("goose did not stop within its plan".into());
        }
    }
    Ok(EngineReport {
        model: "closed".into(),
        started: started.load(std::sync::atomic::Ordering::Relaxed),
        cpu_seconds: cpu_s,
        cpu_cores_used: cores,
        ..Default::default()
    })
}

/// What every step of a run shares.
struct StepContext<'a> {
    plan: &'a Plan,
    collector: &'a Collector,
    seq: &'a AtomicU64,
    started: &'a AtomicU64,
    stop: &'a Stop,
    /// The end of the planned load.
    end: Instant,
}

/// How long a user whose plan has ended waits before goose asks again: goose runs transactions
/// back to back until it tells the user to exit, and a step that returns at once would spin.
const PAST_END_IDLE: Duration = Duration::from_millis(50);

/// The journey's think time before step `si`: none before the first step (so none after the
/// last). False when the step is not to be sent: the run stopped, or the plan ended before the
/// journey started or during the pause.
async fn think(ctx: &StepContext<'_>, ji: usize, si: usize) -> bool {
    if si == 0 && Instant::now() >= ctx.end {
        tokio::select! {
            () = tokio::time::sleep(PAST_END_IDLE) => {}
            () = ctx.stop.stopped() => {}
        }
        return false;
    }
    let Some(t) = ctx.plan.journeys[ji].think_time.filter(|_| si > 0) else {
        return true;
    };
    let wanted = Instant::now() + t;
    let until = wanted.min(ctx.end);
    tokio::select! {
        () = tokio::time::sleep_until(until.into()) => {}
        () = ctx.stop.stopped() => return false,
    }
    until == wanted && !ctx.stop.is_stopped()
}

async fn step(user: &mut GooseUser, ctx: &StepContext<'_>, ji: usize, si: usize) {
    let (plan, collector, seq) = (ctx.plan, ctx.collector, ctx.seq);
    let step = &plan.journeys[ji].steps[si];
    if si == 0 {
        ctx.started
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        user.set_session_data(Session::default());
    }
    let (vars, broken) = match user.get_session_data::<Session>() {
        Some(s) => (s.vars.clone(), s.broken),
        None => (HashMap::new(), false),
    };
    if broken {
        return;
    }
    if !think(ctx, ji, si).await {
        if let Some(s) = user.get_session_data_mut::<Session>() {
            s.broken = true;
        }
        return;
    }
    let (path, headers, body) = step.render(seq, &vars);
    let effect_key = step
        .effect
        .as_ref()
        .and_then(|t| t.key_of(&headers, body.as_ref().map(|(b, _)| &b[..])));
    let sent = Sent::keep(step, &path, &headers, &body);
    let method = goose_method(step.method);
    let Ok(mut rb) = user.get_request_builder(&method, &path) else {
        return;
    };
    for (n, v) in headers {
        rb = rb.header(n, v);
    }
    if let Some((bytes, ctype)) = body {
        rb = rb
            .header(http::header::CONTENT_TYPE, ctype)
            .body(bytes.to_vec());
    }
    let name = &plan.endpoints[step.endpoint];
    let req = GooseRequest::builder()
        .method(method)
        .path(path.as_str())
        .name(name.as_str())
        .set_request_builder(rb)
        .build();
    let t0 = Instant::now();
    let tap = step.effect.as_deref();
    let no_answer = |key: Option<String>| {
        if let Some(t) = tap {
            t.record(key, None, None);
        }
    };
    let (outcome, new_vars) = match user.request(req).await {
        Err(_) => {
            no_answer(effect_key);
            (Outcome::Other, Vec::new())
        }
        Ok(resp) => match resp.response {
            Err(e) => {
                no_answer(effect_key);
                (
                    classify_reqwest(e.is_timeout(), e.is_connect(), &e),
                    Vec::new(),
                )
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let header_caps = capture_headers(&step.captures, r.headers());
                let sampled = sent.as_ref().and_then(|s| s.sample(status, r.headers()));
                match r.bytes().await {
                    Err(e) => {
                        no_answer(effect_key);
                        (
                            classify_reqwest(e.is_timeout(), e.is_connect(), &e),
                            Vec::new(),
                        )
                    }
                    Ok(b) => {
                        if let (Some(sent), Some(resp_headers)) = (&sent, sampled) {
                            sent.offer(&plan.target.base, status, resp_headers, &b);
                        }
                        if let Some(t) = tap {
                            t.record(effect_key, Some(status), Some(&b));
                        }
                        let o = Outcome::from_status(status, &step.expect_status);
                        let mut caps = HashMap::new();
                        if o == Outcome::Ok {
                            caps.extend(header_caps);
                            capture_json(&step.captures, &b, &mut caps);
                        }
                        (o, caps.into_iter().collect())
                    }
                }
            }
        },
    };
    let end = Instant::now();
    collector.record(step.endpoint, end, end - t0, outcome);
    if let Some(s) = user.get_session_data_mut::<Session>() {
        s.vars.extend(new_vars);
        s.broken = outcome != Outcome::Ok;
    }
}

fn classify_reqwest(
    timeout: bool,
    connect: bool,
    e: &(dyn std::error::Error + 'static),
) -> Outcome {
    if timeout {
        Outcome::Timeout
    } else if connect {
        Outcome::Connect
    } else {
        classify_chain(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Dur;

    #[test]
    fn phases_become_a_goose_test_plan() {
        let d = |s| Dur(Duration::from_secs(s));
        let plan = test_plan(&[
            UserPhase::Ramp {
                users: 10,
                duration: d(5),
            },
            UserPhase::Steady { duration: d(20) },
            UserPhase::Spike {
                users: 50,
                duration: d(3),
            },
            UserPhase::Ramp {
                users: 0,
                duration: d(2),
            },
        ]);
        assert_eq!(plan, "10,5s;10,20s;50,0s;50,3s;10,0s;0,2s");
        assert!(plan.parse::<goose::test_plan::TestPlan>().is_ok());
        let plan = test_plan(&[
            UserPhase::Ramp {
                users: 3,
                duration: d(1),
            },
            UserPhase::Steady { duration: d(2) },
        ]);
        assert_eq!(
            plan, "3,1s;3,2s;0,0s",
            "a plan that does not end at zero users never ends"
        );
    }
}
