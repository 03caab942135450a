//! Every scenario error names file, line, column and field. One case per message.

use std::path::Path;

const BASE: &str = "name: t
journeys:
  - name: j
    steps:
      - name: a
        method: GET
        path: /x
load:
  open:
    phases:
      - steady: { rate: 1, duration: 1s }
";

/// Parses `yaml` as `t.yaml` and returns the error as printed.
fn err(yaml: &str) -> String {
    match verifier::plan::parse(Path::new("t.yaml"), yaml) {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

/// BASE with `from` replaced by `to`.
fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

#[test]
fn base_is_valid() {
    verifier::plan::parse(Path::new("t.yaml"), BASE).unwrap();
}

#[test]
fn unreadable_file() {
    let e = verifier::plan::load_file(Path::new("/nonexistent/s.yaml")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("/nonexistent/s.yaml: cannot read: "),
        "{e}"
    );
    assert_eq!(e.line, None);
}

#[test]
fn yaml_syntax() {
    assert_eq!(
        err("name: t\njourneys: [\n"),
        "t.yaml:3:1: not valid YAML: did not find expected node content, while parsing a flow node"
    );
}

/// A syntax error is about the text, not a field: its position and the scanner's words, never
/// the path the typed parse happened to have reached (`field `?``).
#[test]
fn yaml_syntax_names_no_field() {
    assert_eq!(
        err("name: t\n  bad: [\n"),
        "t.yaml:2:6: not valid YAML: mapping values are not allowed in this context (check the indentation, or quote a value that contains `: `)"
    );
    assert_eq!(
        err("name: t\njourneys:\n\t- x\n"),
        "t.yaml:3:1: not valid YAML: found character that cannot start any token, while scanning for the next token (YAML indents with spaces, not tabs)"
    );
    assert_eq!(
        err("name: \"t\n"),
        "t.yaml:2:1: not valid YAML: found unexpected end of stream, while scanning a quoted scalar that starts at line 1 column 7"
    );
    // Found before the typed parse could blame the first key.
    assert_eq!(
        err("a: b: c\n"),
        "t.yaml:1:5: not valid YAML: mapping values are not allowed in this context (check the indentation, or quote a value that contains `: `)"
    );
}

#[test]
fn think_time_on_a_one_step_journey() {
    let closed = BASE.replace(
        "  open:\n    phases:\n      - steady: { rate: 1, duration: 1s }",
        "  closed:\n    phases:\n      - ramp: { users: 1, duration: 1s }",
    );
    assert!(closed.contains("closed:"));
    verifier::plan::parse(Path::new("t.yaml"), &closed).unwrap();
    let e = err(&closed.replacen("    steps:", "    think_time: 1s\n    steps:", 1));
    assert_eq!(
        e,
        "t.yaml:4:17: field `journeys[0].think_time`: think_time is a pause between a journey's steps, and journey `j` has one step: it would never pause (fewer users lower the load instead)"
    );
}

#[test]
fn think_time_in_the_open_model() {
    let e = err(&with("    steps:", "    think_time: 100ms\n    steps:"));
    assert_eq!(
        e,
        "t.yaml:4:17: field `journeys[0].think_time`: think_time applies to the closed model only: open-model arrivals run their steps back to back (lower the rate instead)"
    );
}

#[test]
fn unknown_field() {
    assert_eq!(
        err(&with("method: GET", "methd: GET")),
        "t.yaml:6:9: field `journeys[0].steps[0].methd`: unknown field `methd`, expected one of `name`, `method`, `path`, `headers`, `body`, `capture`, `expect_status`"
    );
}

#[test]
fn unknown_top_level_field() {
    assert_eq!(
        err(&format!("{BASE}budget: {{}}\n")),
        "t.yaml:12:1: field `budget`: unknown field `budget`, expected one of `name`, `description`, `target`, `defaults`, `journeys`, `load`, `budgets`, `environment`, `faults`, `steady_state`, `invariants`, `contract`, `functional`, `security`, `triggers`, `observability`, `compare`"
    );
}

#[test]
fn missing_field() {
    assert_eq!(
        err(&with("        path: /x\n", "")),
        "t.yaml:5:9: field `journeys[0].steps[0]`: missing field `path`"
    );
}

#[test]
fn unknown_method() {
    assert_eq!(
        err(&with("method: GET", "method: FETCH")),
        "t.yaml:6:17: field `journeys[0].steps[0].method`: unknown variant `FETCH`, expected one of `GET`, `POST`, `PUT`, `PATCH`, `DELETE`, `HEAD`"
    );
}

#[test]
fn unknown_phase_kind() {
    assert_eq!(
        err(&with("- steady:", "- stedy:")),
        "t.yaml:11:9: field `load.open.phases[0].stedy`: unknown variant `stedy`, expected one of `ramp`, `steady`, `spike`"
    );
}

#[test]
fn unknown_load_model() {
    assert_eq!(
        err(&with("  open:", "  opn:")),
        "t.yaml:9:3: field `load.opn`: unknown variant `opn`, expected `open` or `closed`"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        err(&with("rate: 1,", "rate: fast,")),
        "t.yaml:11:25: field `load.open.phases[0].steady.rate`: invalid type: string \"fast\", expected f64; write journeys started per second as a plain number, e.g. `rate: 200` for 200/s"
    );
}

#[test]
fn rate_written_with_its_unit_gets_the_plain_form() {
    assert_eq!(
        err(&with("rate: 1,", "rate: \"200/s\",")),
        "t.yaml:11:25: field `load.open.phases[0].steady.rate`: invalid type: string \"200/s\", expected f64; write journeys started per second as a plain number, e.g. `rate: 200` for 200/s"
    );
    let ramp = BASE.replace(
        "steady: { rate: 1, duration: 1s }",
        "ramp: { from: 5/s, to: 40, duration: 1s }",
    );
    assert!(
        err(&ramp).ends_with(
            "; write journeys started per second as a plain number, e.g. `from: 200` for 200/s"
        ),
        "{}",
        err(&ramp)
    );
}

#[test]
fn error_rate_written_as_a_percentage_gets_the_fraction_form() {
    assert_eq!(
        err(&format!("{BASE}budgets:\n  error_rate: 1%\n")),
        "t.yaml:13:15: field `budgets.error_rate`: invalid type: string \"1%\", expected f64; write an error rate as a fraction from 0 to 1, e.g. `error_rate: 0.01` for 1 %"
    );
}

#[test]
fn micro_seconds_are_durations_in_either_spelling() {
    for d in ["250us", "250µs"] {
        let s = verifier::plan::parse(
            Path::new("t.yaml"),
            &format!("{BASE}budgets:\n  endpoints:\n    a: {{ p50: {d} }}\n"),
        )
        .unwrap_or_else(|e| panic!("{d}: {e}"));
        assert_eq!(
            s.budgets.endpoints["a"].p50.unwrap().0,
            std::time::Duration::from_micros(250)
        );
    }
}

#[test]
fn duration_without_unit() {
    assert_eq!(
        err(&with("duration: 1s", "duration: 10")),
        "t.yaml:11:38: field `load.open.phases[0].steady.duration`: duration `10` has no unit (use us (or µs), ms, s, m or h, e.g. 250ms)"
    );
}

#[test]
fn duration_with_unknown_unit() {
    assert_eq!(
        err(&with("duration: 1s", "duration: 3 days")),
        "t.yaml:11:38: field `load.open.phases[0].steady.duration`: duration `3 days` has unknown unit `days` (use us (or µs), ms, s, m or h, e.g. 250ms)"
    );
}

#[test]
fn zero_weight() {
    assert_eq!(
        err(&with("  - name: j\n", "  - name: j\n    weight: 0\n")),
        "t.yaml:4:13: field `journeys[0].weight`: invalid value: integer `0`, expected a nonzero u32"
    );
}

#[test]
fn unclosed_template() {
    assert_eq!(
        err(&with("path: /x", "path: /x/${id")),
        "t.yaml:7:15: field `journeys[0].steps[0].path`: unclosed `${` in `/x/${id`"
    );
}

#[test]
fn unknown_template_expression() {
    assert_eq!(
        err(&with("path: /x", "path: /x/${uuid()}")),
        "t.yaml:7:15: field `journeys[0].steps[0].path`: unknown expression `${uuid()}` (known: uuid, seq, choice(..), random(a,b), env.NAME, a captured name)"
    );
}

#[test]
fn bad_random_bounds() {
    assert_eq!(
        err(&with("path: /x", "path: /x/${random(9,1)}")),
        "t.yaml:7:15: field `journeys[0].steps[0].path`: `${random(9,1)}`: random needs two integers, low then high"
    );
}

#[test]
fn empty_choice() {
    assert_eq!(
        err(&with("path: /x", "path: /x/${choice(a,,b)}")),
        "t.yaml:7:15: field `journeys[0].steps[0].path`: `${choice(a,,b)}`: choice needs non-empty values separated by commas"
    );
}

#[test]
fn bad_env_name() {
    assert_eq!(
        err(&with("path: /x", "path: /x/${env.A-B}")),
        "t.yaml:7:15: field `journeys[0].steps[0].path`: `${env.A-B}`: `A-B` is not a valid environment variable name"
    );
}

#[test]
fn path_without_slash() {
    assert_eq!(
        err(&with("path: /x", "path: x")),
        "t.yaml:7:15: field `journeys[0].steps[0].path`: path must start with `/`"
    );
}

#[test]
fn capture_used_before_it_exists() {
    assert_eq!(
        err(&with("path: /x", "path: /x/${order_id}")),
        "t.yaml:7:15: field `journeys[0].steps[0].path`: `${order_id}` is not captured by an earlier step of journey `j`"
    );
}

#[test]
fn capture_used_in_header_before_it_exists() {
    assert_eq!(
        err(&with(
            "        path: /x\n",
            "        path: /x\n        headers:\n          If-Match: \"${etag}\"\n"
        )),
        "t.yaml:9:21: field `journeys[0].steps[0].headers.If-Match`: `${etag}` is not captured by an earlier step of journey `j`"
    );
}

#[test]
fn capture_used_in_body_before_it_exists() {
    assert_eq!(
        err(&with(
            "        path: /x\n",
            "        path: /x\n        body:\n          json: { id: \"${nope}\" }\n"
        )),
        "t.yaml:9:11: field `journeys[0].steps[0].body`: `${nope}` is not captured by an earlier step of the journey"
    );
}

#[test]
fn json_pointer_without_slash() {
    assert_eq!(
        err(&with(
            "        path: /x\n",
            "        path: /x\n        capture:\n          id: { json: id }\n"
        )),
        "t.yaml:9:15: field `journeys[0].steps[0].capture.id`: JSON pointer `id` must start with `/`"
    );
}

#[test]
fn no_journeys() {
    assert_eq!(
        err(
            "name: t\njourneys: []\nload:\n  open:\n    phases: [{ steady: { rate: 1, duration: 1s } }]\n"
        ),
        "t.yaml:2:11: field `journeys`: is empty: at least 1 required (journeys of one scenario)"
    );
}

#[test]
fn journey_without_steps() {
    assert_eq!(
        err(
            "name: t\njourneys: [{ name: j, steps: [] }]\nload:\n  open:\n    phases: [{ steady: { rate: 1, duration: 1s } }]\n"
        ),
        "t.yaml:2:30: field `journeys[0].steps`: is empty: at least 1 required (steps of one journey)"
    );
}

#[test]
fn no_phases() {
    assert_eq!(
        err(&with(
            "    phases:\n      - steady: { rate: 1, duration: 1s }\n",
            "    phases: []\n"
        )),
        "t.yaml:10:13: field `load.open.phases`: is empty: at least 1 required (phases of the open model)"
    );
}

#[test]
fn negative_rate() {
    assert_eq!(
        err(&with("rate: 1,", "rate: -5,")),
        "t.yaml:11:25: field `load.open.phases[0].steady.rate`: -5 is out of range: must be 0 to 1000000 (journeys started per second)"
    );
}

#[test]
fn zero_duration() {
    assert_eq!(
        err(&with("duration: 1s", "duration: 0s")),
        "t.yaml:11:38: field `load.open.phases[0].steady.duration`: duration `0s` is out of range: must be 1ms to 24h (one phase; all phases together at most 24 h)"
    );
}

#[test]
fn zero_max_in_flight() {
    assert_eq!(
        err(&format!("{BASE}    max_in_flight: 0\n")),
        "t.yaml:12:20: field `load.open.max_in_flight`: 0 is out of range: must be 1 to 10000 (requests in flight, each with its buffers and socket)"
    );
}

#[test]
fn closed_phase_in_fractional_seconds() {
    assert_eq!(
        err(&with(
            "  open:\n    phases:\n      - steady: { rate: 1, duration: 1s }\n",
            "  closed:\n    phases:\n      - ramp: { users: 2, duration: 1500ms }\n"
        )),
        "t.yaml:11:37: field `load.closed.phases[0].ramp.duration`: closed-model phases last whole seconds (1s or more)"
    );
}

#[test]
fn error_rate_not_a_fraction() {
    assert_eq!(
        err(&format!("{BASE}budgets:\n  error_rate: 5\n")),
        "t.yaml:13:15: field `budgets.error_rate`: 5 is out of range: must be 0 to 1 (a fraction: 0.01 is 1 %)"
    );
}

#[test]
fn budget_for_unknown_endpoint() {
    assert_eq!(
        err(&format!(
            "{BASE}budgets:\n  endpoints:\n    b: {{ p99: 1s }}\n"
        )),
        "t.yaml:14:8: field `budgets.endpoints.b`: no step is named `b` (known: a)"
    );
}

#[test]
fn unknown_quantile() {
    assert_eq!(
        err(&format!(
            "{BASE}budgets:\n  endpoints:\n    a: {{ p98: 1s }}\n"
        )),
        "t.yaml:14:10: field `budgets.endpoints.a.p98`: unknown field `p98`, expected one of `p50`, `p90`, `p95`, `p99`, `p999`, `max`"
    );
}

#[test]
fn abort_without_window() {
    assert_eq!(
        err(&format!("{BASE}budgets:\n  abort_on_breach: true\n")),
        "t.yaml:13:20: field `budgets.abort_on_breach`: abort_on_breach needs `window`: breaches are judged over sliding windows"
    );
}

#[test]
fn target_not_http() {
    assert_eq!(
        err(&format!("target: https://example.test\n{BASE}")),
        "t.yaml:1:9: field `target`: target `https://example.test` must start with http://"
    );
}

#[test]
fn unset_environment_variable_is_a_plan_error() {
    let yaml = with(
        "path: /x",
        "path: /x\n        headers: { Authorization: \"Bearer ${env.VERIFIER_TEST_UNSET}\" }",
    );
    let s = verifier::plan::parse(Path::new("t.yaml"), &yaml).unwrap();
    let e = verifier::load::Plan::new(s.core(), Some("http://127.0.0.1:1"), &|_| None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "journeys[0].steps[0].headers.Authorization: environment variable `VERIFIER_TEST_UNSET` is not set"
    );
    let p = verifier::load::Plan::new(s.core(), Some("http://127.0.0.1:1"), &|_| {
        Some("tok".into())
    })
    .unwrap();
    assert_eq!(p.target.authority, "127.0.0.1:1");
}

#[test]
fn missing_target_is_a_plan_error() {
    let s = verifier::plan::parse(Path::new("t.yaml"), BASE).unwrap();
    let e = verifier::load::Plan::new(s.core(), None, &|_| None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "target: no target: give --target or `target:` in the scenario"
    );
}

// The chaos parts: environment, faults, steady state, invariants.

/// BASE (1 s of load) with 10 s of load and a staging environment, plus `extra`.
fn drill(extra: &str) -> String {
    let base = with("{ rate: 1, duration: 1s }", "{ rate: 1, duration: 10s }");
    format!(
        "{base}environment:
  external:
    toxiproxy: http://127.0.0.1:8474
    proxies: {{ postgres: pg, redis: cache }}
{extra}"
    )
}

fn fault(name: &str, target: &str, start: &str, dur: &str, fault: &str) -> String {
    format!(
        "  - {{ name: {name}, target: {target}, start: {start}, duration: {dur}, fault: {fault} }}\n"
    )
}

#[test]
fn drill_base_is_valid() {
    let yaml = drill(&format!(
        "faults:\n{}{}",
        fault(
            "slow",
            "postgres",
            "1s",
            "2s",
            "{ latency: { delay: 100ms } }"
        ),
        fault("cut", "redis", "1s", "2s", "down")
    ));
    verifier::plan::parse(Path::new("t.yaml"), &yaml).unwrap();
}

#[test]
fn fault_on_an_unknown_dependency() {
    assert_eq!(
        err(&drill(&format!(
            "faults:\n{}",
            fault("x", "mysql", "1s", "1s", "down")
        ))),
        "t.yaml:17:24: field `faults[0].target`: unknown dependency `mysql`; the external environment has: postgres, redis"
    );
}

#[test]
fn container_action_on_staging() {
    assert_eq!(
        err(&drill(&format!(
            "faults:\n{}",
            fault("x", "redis", "1s", "1s", "pause")
        ))),
        "t.yaml:17:63: field `faults[0].fault`: `pause` acts on a container, which the external provider does not control; use `down` or a toxic, or the testcontainers provider"
    );
}

#[test]
fn overlapping_faults_that_cannot_be_honoured() {
    assert_eq!(
        err(&drill(&format!(
            "faults:\n{}{}",
            fault("a", "redis", "1s", "5s", "{ latency: { delay: 1s } }"),
            fault("b", "redis", "3s", "1s", "down")
        ))),
        "t.yaml:18:38: field `faults[1].start`: `b` (down) overlaps `a` (latency) on `redis`; a down fault cannot share its target with another fault"
    );
}

#[test]
fn fault_after_the_load_ends() {
    assert_eq!(
        err(&drill(&format!(
            "faults:\n{}",
            fault("late", "redis", "10s", "1s", "down")
        ))),
        "t.yaml:17:41: field `faults[0].start`: starts at 10s, after the load ends at 10s"
    );
}

#[test]
fn faults_without_an_environment() {
    assert_eq!(
        err(&format!(
            "{BASE}faults:\n{}",
            fault("x", "redis", "0s", "1s", "down")
        )),
        "t.yaml:13:3: field `faults`: faults need an environment that can inject them: `environment: {external: ...}` or `{testcontainers: ...}`"
    );
}

#[test]
fn steady_state_for_a_fault_that_does_not_exist() {
    assert_eq!(
        err(&drill(&format!(
            "faults:\n{}steady_state:\n  baseline: {{ p99: 1s }}\n  recovery_within: 1s\n  during:\n    cutt: {{ error_rate: 0.1 }}\n",
            fault("cut", "redis", "1s", "2s", "down")
        ))),
        "t.yaml:22:11: field `steady_state.during.cutt`: no fault is named `cutt` (known: cut)"
    );
}

#[test]
fn invariants_on_a_step_that_does_not_exist() {
    let yaml = drill(
        "invariants:
  step: create
  key: { header: Idempotency-Key }
  id_pointer: /id
  database: { url: postgres://x, count_by_id: q, ids_by_key: q }
",
    );
    assert_eq!(
        err(&yaml),
        "t.yaml:17:9: field `invariants.step`: no step is named `create` (known: a)"
    );
}

#[test]
fn service_env_with_an_unknown_placeholder() {
    let yaml = format!(
        "{BASE}environment:
  testcontainers:
    dependencies: [postgres]
    service:
      command: [svc]
      env:
        CACHE: ${{redis.addr}}
"
    );
    assert_eq!(
        err(&yaml),
        "t.yaml:18:16: field `environment.testcontainers.service.env.CACHE`: `${redis.addr}` is not known here; known: postgres.addr, postgres.host, postgres.port, service.addr, service.port, env.NAME"
    );
}

#[test]
fn unknown_fault_kind() {
    let e = err(&drill(&format!(
        "faults:\n{}",
        fault("x", "redis", "1s", "1s", "{ melt: {} }")
    )));
    assert!(
        e.starts_with("t.yaml:17:") && e.contains("unknown variant `melt`"),
        "{e}"
    );
}

#[test]
fn trigger_expectation_for_an_unknown_fault() {
    assert_eq!(
        err(&format!(
            "{BASE}triggers:\n  file: t.yaml\n  expect:\n    pg-down: {{fire: [A], within: 5s}}\n"
        )),
        "t.yaml:15:14: field `triggers.expect.pg-down`: no fault is named `pg-down` (known: healthy)"
    );
}

#[test]
fn trigger_section_shapes() {
    assert_eq!(
        err(&format!(
            "{BASE}triggers:\n  file: t.yaml\n  expect:\n    healthy: {{quiet: [A]}}\n    x: {{}}\n"
        ))
        .split(": field")
        .nth(1)
        .unwrap(),
        " `triggers.expect.x`: no fault is named `x` (known: healthy)"
    );
    assert_eq!(
        err(&format!(
            "{BASE}triggers:\n  file: t.yaml\n  expect:\n    healthy: {{fire: [A]}}\n"
        )),
        "t.yaml:15:21: field `triggers.expect.healthy.fire`: nothing must fire in the healthy phase; list triggers under `quiet`"
    );
    assert_eq!(
        err(&format!(
            "{BASE}triggers:\n  file: t.yaml\n  prometheus: localhost:9090\n"
        )),
        "t.yaml:14:15: field `triggers.prometheus`: `localhost:9090` is neither `start` nor an http:// URL"
    );
}

#[test]
fn observability_histogram_on_an_unknown_step() {
    assert_eq!(
        err(&format!(
            "{BASE}observability:\n  histogram:\n    metric: h\n    endpoint: b\n    labels: {{route: r}}\n    tolerance: 5ms\n"
        )),
        "t.yaml:15:15: field `observability.histogram.endpoint`: no step is named `b` (known: a)"
    );
}
