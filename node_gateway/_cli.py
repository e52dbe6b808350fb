"""``carbon-gateway``: the command line. It parses arguments and calls public functions.

Settings come from ``GATEWAY_*`` environment variables (:class:`GatewaySettings`);
``--ledger`` overrides ``GATEWAY_LEDGER_URL``. Exit codes: 0 success, 1 a gateway
error (printed with its code), 2 bad settings or arguments, 3 the ledger or the MQTT
broker is unreachable (nothing lost: run ``flush`` again later; readings stay queued
at the broker).

The ``mqtt-*`` commands (:mod:`node_gateway.mqtt`) use the ``GATEWAY_MQTT_*`` settings:
``mqtt-run`` is the subscriber (until SIGTERM or Ctrl-C), ``mqtt-publish-sim`` plays
meters, ``mqtt-dead-letters`` lists (and replays) messages that were not readings.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from carbon_protocol.errors import ProtocolError

from .errors import CsvImportError, GatewayError, LedgerUnavailableError
from .gateway import DeviceSpec, Gateway, Organisation, default_fleet
from .mqtt import (
    DEAD_LETTER_FILE,
    BatchRecorder,
    BrokerUnavailableError,
    DeadLetters,
    MeterPublisher,
    MqttConfig,
    MqttSubscriber,
    PeriodicFlush,
)
from .settings import GatewaySettings
from .simulator import KIND_QUANTITY, MeterSpec, Simulator, kind_of

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="carbon-gateway: sign meter readings at the edge and deliver them to "
                       "the carbon ledger, losing and doubling nothing.")
console = Console(stderr=True, soft_wrap=True)

LedgerOpt = Annotated[str | None, typer.Option(
    "--ledger", help="ledger URL (default: GATEWAY_LEDGER_URL)")]


def _fail(diag: dict[str, Any], exit_code: int = 1) -> NoReturn:
    code = escape(f"[{diag.get('code')}]")
    console.print(f"[bold red]error[/] {code} {escape(str(diag.get('message')))}",
                  highlight=False)
    raise typer.Exit(exit_code)


def _settings(ledger: str | None = None) -> GatewaySettings:
    try:
        return GatewaySettings(ledger_url=ledger) if ledger else GatewaySettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        _fail({"code": "invalid_settings",
               "message": f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"}, 2)


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a public function, turning our error families into exit codes."""
    try:
        return fn(*args, **kwargs)
    except CsvImportError as exc:
        console.print(f"[bold red]error[/] {escape(f'[{exc.code}] {exc.file}')}: nothing "
                      f"imported, {len(exc.problems)} problem(s):", highlight=False)
        for p in exc.problems[:50]:
            console.print(f"  {escape(str(p))}", highlight=False)
        raise typer.Exit(1) from None
    except LedgerUnavailableError as exc:
        _fail(exc.diagnostics(), 3)
    except (GatewayError, ProtocolError) as exc:
        _fail(exc.diagnostics())


def _open(settings: GatewaySettings) -> Gateway:
    return _run(Gateway.from_settings, settings)  # type: ignore[no-any-return]


@app.command()
def provision(
    meter: Annotated[list[str] | None, typer.Option(
        "--meter", help="KIND=DEVICE_ID, KIND one of electricity, gas (line m3), "
                        "gas_corrected (Nm3), heat (repeatable; "
                        "default: one electricity, gas and heat meter)")] = None,
    ledger: LedgerOpt = None,
) -> None:
    """Register enterprise, site, gateway and meters with the ledger; create device keys."""
    s = _settings(ledger)
    org = Organisation.from_settings(s)
    if meter:
        specs = []
        for item in meter:
            kind, sep, device = item.partition("=")
            if not sep or kind not in KIND_QUANTITY:
                _fail({"code": "invalid_argument",
                       "message": f"--meter {item!r}: expected KIND=DEVICE_ID with KIND one of "
                                  f"{', '.join(KIND_QUANTITY)}"}, 2)
            specs.append(DeviceSpec.for_kind(device, kind, org.site_id))  # type: ignore[arg-type]
    else:
        specs = default_fleet(s.prefix, org.site_id)
    with _open(s) as gw:
        domain = _run(gw.connect)
        _run(gw.ensure_organisation, org)
        for spec in specs:
            pub = _run(gw.provision, spec)
            console.print(f"provisioned {spec.device_id} ({spec.quantity}, {spec.unit}) "
                          f"key {pub.suite}:{pub.key_id}", highlight=False)
    console.print(f"domain: chain {domain.chain_id}, contract {domain.contract}, "
                  f"log {domain.log_id}", highlight=False)


def _parse_start(text: str | None, default: datetime) -> datetime:
    if text is None:
        return default
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _fail({"code": "invalid_argument",
               "message": f"--start {text!r} is not an ISO date or time"}, 2)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@app.command()
def simulate(
    days: Annotated[float, typer.Option(min=0, help="how many days to simulate")] = 1.0,
    start: Annotated[str | None, typer.Option(
        help="first moment (ISO, UTC); default GATEWAY_SIM_ORIGIN")] = None,
    seed: Annotated[int | None, typer.Option(help="default GATEWAY_SEED")] = None,
) -> None:
    """Record simulated 15-minute readings of every provisioned meter (idempotent)."""
    s = _settings()
    begin = _parse_start(start, s.sim_origin)
    with Gateway(s.data_dir, suite=s.suite) as gw:
        result = _run(gw.simulate, begin, days, seed=s.seed if seed is None else seed,
                      origin=s.sim_origin)
    console.print(f"recorded {result.recorded} new readings, {result.unchanged} already "
                  "recorded", highlight=False)
    for device, (a, b) in sorted(result.seqs.items()):
        console.print(f"  {device}: seq {a}..{b}", highlight=False)


@app.command("import-csv")
def import_csv(file: Path) -> None:
    """Import a CSV file (device,measured_at,quantity,unit,value,cumulative,quality),
    all rows or none."""
    s = _settings()
    with Gateway(s.data_dir, suite=s.suite) as gw:
        result = _run(gw.import_csv, file)
    console.print(f"{file}: recorded {result.recorded} new readings, {result.unchanged} "
                  "already recorded", highlight=False)


@app.command()
def flush(
    ledger: LedgerOpt = None,
    quiet: Annotated[bool, typer.Option(help="no progress bar")] = False,
) -> None:
    """Deliver pending readings to the ledger, retrying with backoff."""
    s = _settings(ledger)
    with _open(s) as gw:
        if quiet or not console.is_terminal:
            report = _run(gw.flush)
        else:
            with Progress(TextColumn("uploading"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task("upload", total=None)
                report = _run(gw.flush, on_progress=lambda p: bar.update(
                    task, completed=p.settled, total=p.total))
    console.print(f"accepted {report.accepted}, duplicates {report.duplicates}, rejected "
                  f"{report.rejected} in {report.batches} batch(es), {report.retries} "
                  "retries", highlight=False)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    limit: Annotated[int, typer.Option(help="dead letters to list")] = 20,
) -> None:
    """Readings per state, each device's next sequence number, and the dead letters."""
    s = _settings()
    with Gateway(s.data_dir, suite=s.suite) as gw:
        st = gw.status(dead_letter_limit=limit)
    if as_json:
        sys.stdout.write(json.dumps({
            "counts": st.counts,
            "devices": [{"device": d.device, "quantity": d.quantity, "unit": d.unit,
                         "next_seq": d.next_seq} for d in st.devices],
            "dead_letters": [{"id": e.id, "device": e.device, "seq": e.seq,
                              "measured_at": e.measured_at, "error_code": e.error_code,
                              "error": e.error} for e in st.dead_letters],
            "domain": None if st.domain is None else st.domain.model_dump(),
        }, indent=2) + "\n")
        return
    console.print(f"pending {st.counts['pending']}, acked {st.counts['acked']}, rejected "
                  f"{st.counts['rejected']}", highlight=False)
    table = Table("device", "quantity", "unit", "next seq")
    for d in st.devices:
        table.add_row(d.device, d.quantity, d.unit, str(d.next_seq))
    console.print(table)
    if st.dead_letters:
        dead = Table("id", "device", "seq", "measured at", "error", title="dead letters")
        for e in st.dead_letters:
            msg = (e.error or {}).get("message", "")
            dead.add_row(str(e.id), e.device, str(e.seq), e.measured_at,
                         escape(f"{e.error_code}: {msg}"))
        console.print(dead)


@app.command()
def requeue(
    code: Annotated[str | None, typer.Option(help="only dead letters with this error code")]
    = None,
) -> None:
    """Put rejected readings back in the queue, unchanged (e.g. after registering a key)."""
    s = _settings()
    with Gateway(s.data_dir, suite=s.suite) as gw:
        n = gw.outbox.requeue(code=code)
    console.print(f"re-queued {n} reading(s)", highlight=False)


@app.command()
def inventory(
    period: Annotated[str, typer.Argument(
        help="period label: 2026 (year), 2026-Q4, 2026-10 (month) or 2026-10-05 (day)")],
    device: Annotated[list[str] | None, typer.Option(
        "--device", help="only these devices (repeatable; default: every device with an "
                         "emission source and readings in the period)")] = None,
    methodology: Annotated[str, typer.Option(help="methodology id on the RuleRegistry")] = (
        "cn.enterprise-ghg"),
    timezone: Annotated[str, typer.Option(
        help="calendar of the period label (IANA name, e.g. Asia/Shanghai)")] = "UTC",
    rpc_url: Annotated[str | None, typer.Option(
        help="read the rules from the RuleRegistry on this chain (with --registry); "
             "default: relayed by the ledger, hashes checked")] = None,
    registry: Annotated[str | None, typer.Option(help="the RuleRegistry's address")] = None,
    out: Annotated[Path | None, typer.Option("-o", "--out",
                                             help="also write the signed inventory here")] = None,
    submit: Annotated[bool, typer.Option(help="submit it to the ledger")] = True,
    ledger: LedgerOpt = None,
) -> None:
    """Compute the inventory of this gateway's meters for a period with the rule version
    in force on it, sign it with the gateway's key, and submit it to the ledger."""
    from carbon_rules.errors import RulesError
    from carbon_rules.inventory import period_from_label
    from carbon_rules.registry_client import RuleRegistryClient

    from . import inventory as inv

    s = _settings(ledger)
    try:
        span = period_from_label(period, timezone)
        client = None
        if rpc_url is not None or registry is not None:
            if rpc_url is None or registry is None:
                _fail({"code": "invalid_argument",
                       "message": "--rpc-url and --registry go together"}, 2)
            client = RuleRegistryClient.connect(rpc_url, registry)
    except RulesError as exc:
        _fail(exc.diagnostics(), 2)
    with _open(s) as gw:
        gw.gateway_id = gw.gateway_id or s.resolved_gateway_id
        pub = _run(inv.ensure_gateway_key, gw)
        rules = _run(inv.fetch_rules, gw, methodology, client)
        run = _run(inv.compute, gw, span, rules, devices=device)
        signed = run.signed
        for skipped, why in sorted(run.skipped.items()):
            console.print(f"  skipped {skipped}: {escape(why)}", highlight=False)
        table = Table(title=f"inventory {span.label} of {gw.gateway_id}")
        for column in ("line", "device", "source", "scope", "activity", "emissions tCO2e"):
            table.add_column(column)
        for line in signed.inventory.lines:
            table.add_row(str(line.line), line.readings.device, line.source, str(line.scope),
                          f"{line.activity.value} {line.activity.unit}", line.emissions)
        console.print(table)
        rule = signed.inventory.rule
        console.print(f"total {signed.inventory.totals.total} tCO2e (scope 1 "
                      f"{signed.inventory.totals.scope1}, scope 2 "
                      f"{signed.inventory.totals.scope2}); rule {rule.methodology_id} "
                      f"v{rule.version}; signed by {pub.suite}:{pub.key_id}", highlight=False)
        if out is not None:
            out.write_text(signed.model_dump_json(indent=2) + "\n")
        if submit:
            receipt = _run(inv.submit, gw, signed)
            console.print(f"accepted as {receipt['inventory_id']} at leaf "
                          f"{receipt['leaf_index']}", highlight=False)
            sys.stdout.write(json.dumps(receipt) + "\n")


@app.command("rotate-key")
def rotate_key(device: str, ledger: LedgerOpt = None) -> None:
    """Replace a device's key (the old one is archived) and register the new one."""
    s = _settings(ledger)
    with _open(s) as gw:
        pub = _run(gw.rotate_key, device)
    console.print(f"{device}: new key {pub.suite}:{pub.key_id}", highlight=False)


# -- MQTT ------------------------------------------------------------------------------
def _run_mqtt(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Like :func:`_run`, with an unreachable broker as exit code 3."""
    try:
        return fn(*args, **kwargs)
    except BrokerUnavailableError as exc:
        _fail(exc.diagnostics(), 3)
    except (GatewayError, ProtocolError) as exc:
        _fail(exc.diagnostics())


@app.command("mqtt-run")
def mqtt_run(
    flush_every: Annotated[float | None, typer.Option(
        min=0, help="deliver the outbox to the ledger every so many seconds (default "
                    "GATEWAY_MQTT_FLUSH_INTERVAL; 0: never)")] = None,
    ledger: LedgerOpt = None,
    idle_exit: Annotated[float | None, typer.Option(
        min=0, help="stop after this many seconds without a message")] = None,
    give_up_after: Annotated[float | None, typer.Option(
        min=0, help="exit (code 3) when the broker has been unreachable this long "
                    "(default: keep retrying)")] = None,
) -> None:
    """Subscribe to the meters' readings over MQTT; record each in the outbox before
    acknowledging it (until SIGTERM or Ctrl-C)."""
    s = _settings(ledger)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    interval = s.mqtt_flush_interval if flush_every is None else flush_every
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with Gateway(s.data_dir, suite=s.suite) as gw, \
            MqttSubscriber(gw, MqttConfig.from_settings(s)) as sub:
        flusher: AbstractContextManager[Any] = nullcontext()
        if interval > 0:
            flusher = PeriodicFlush(lambda: Gateway.from_settings(s), interval)
        with flusher:
            stats = _run_mqtt(sub.run, stop, idle_exit=idle_exit, give_up_after=give_up_after)
    console.print(stats.summary(), highlight=False)


@app.command("mqtt-publish-sim")
def mqtt_publish_sim(
    days: Annotated[float, typer.Option(min=0, help="how many days to publish")] = 1.0,
    start: Annotated[str | None, typer.Option(
        help="first moment (ISO, UTC); default GATEWAY_SIM_ORIGIN")] = None,
    seed: Annotated[int | None, typer.Option(help="default GATEWAY_SEED")] = None,
    meter: Annotated[list[str] | None, typer.Option(
        "--meter", help="KIND=DEVICE_ID, KIND one of electricity, gas (line m3), "
                        "gas_corrected (Nm3), heat (repeatable; "
                        "default: the provisioned meters, else one electricity, gas "
                        "and heat meter)")] = None,
    site: Annotated[str | None, typer.Option(
        help="site topic level (default GATEWAY_MQTT_SITE, else the site id's suffix)")]
    = None,
    timeout: Annotated[float, typer.Option(min=1, help="seconds to wait for the broker's "
                                                       "acknowledgements")] = 300.0,
) -> None:
    """Publish simulated 15-minute readings over MQTT (QoS 1), as meters would."""
    s = _settings()
    begin = _parse_start(start, s.sim_origin)
    specs: list[MeterSpec] = []
    for item in meter or []:
        kind, sep, device = item.partition("=")
        if not sep or kind not in KIND_QUANTITY:
            _fail({"code": "invalid_argument",
                   "message": f"--meter {item!r}: expected KIND=DEVICE_ID with KIND one of "
                              f"{', '.join(KIND_QUANTITY)}"}, 2)
        specs.append(MeterSpec(device, kind))  # type: ignore[arg-type]
    if not specs and (s.data_dir / "outbox.db").exists():
        with Gateway(s.data_dir, suite=s.suite) as gw:
            for d in gw.outbox.devices():
                k = kind_of(d.quantity, d.unit)
                if k is not None:
                    specs.append(MeterSpec(d.device, k))
    if not specs:
        specs = [MeterSpec(d.device_id, kind_of(d.quantity, d.unit) or "electricity")
                 for d in default_fleet(s.prefix, s.resolved_site_id)]
    sim = Simulator(specs, seed=s.seed if seed is None else seed, origin=s.sim_origin)
    with MeterPublisher(MqttConfig.from_settings(s), site=site or s.resolved_mqtt_site) as pub:
        _run_mqtt(pub.connect)
        report = _run_mqtt(pub.publish, sim.readings(begin, begin + timedelta(days=days)),
                           timeout=timeout)
    rate = report.published / report.seconds if report.seconds > 0 else 0.0
    console.print(f"published {report.published} readings of {len(specs)} meter(s) to "
                  f"{pub.config.broker} in {report.seconds:.1f} s ({rate:.0f}/s)",
                  highlight=False)
    if report.refused:
        _fail({"code": "broker_refused",
               "message": f"the broker refused {report.refused} of them (MQTT 5 PUBACK "
                          "failure: check the ACL for this user and topic)"})


@app.command("mqtt-dead-letters")
def mqtt_dead_letters(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    limit: Annotated[int, typer.Option(help="how many to list")] = 50,
    replay: Annotated[bool, typer.Option(
        help="record the dead letters that are valid now (e.g. after provisioning)")] = False,
) -> None:
    """MQTT messages that could not become readings, kept with their raw payloads."""
    s = _settings()
    with Gateway(s.data_dir, suite=s.suite) as gw, \
            DeadLetters(s.data_dir / DEAD_LETTER_FILE) as dead:
        if replay:
            rep = _run(BatchRecorder(gw, dead, topic_root=s.mqtt_topic_root).replay)
            console.print(f"replayed {rep.replayed}: recorded {rep.recorded}, already recorded "
                          f"{rep.unchanged}, still rejected {rep.still_rejected}",
                          highlight=False)
        letters = dead.list(limit)
        total = dead.count()
    if as_json:
        sys.stdout.write(json.dumps({"count": total, "dead_letters": [{
            "id": d.id, "topic": d.topic, "code": d.code, "reason": d.reason,
            "payload": d.payload.decode("utf-8", "replace"), "payload_size": d.payload_size,
            "payload_sha256": d.payload_sha256, "first_seen": d.first_seen,
            "last_seen": d.last_seen, "deliveries": d.deliveries} for d in letters]},
            indent=2) + "\n")
        return
    console.print(f"{total} dead letter(s)", highlight=False)
    if letters:
        table = Table("id", "topic", "code", "reason", "payload", "seen")
        for d in letters:
            table.add_row(str(d.id), escape(d.topic), d.code, escape(d.reason),
                          escape(repr(d.payload[:80])), str(d.deliveries))
        console.print(table)


# -- identifiers of maintenance operations and calibrations (identifier_resolver) ----------
_AtOpt = Annotated[str | None, typer.Option(
    "--at", help="when it happened, ISO 8601 with a zone (default: now, UTC)")]
_DocOpt = Annotated[Path | None, typer.Option(
    help="a document to hash into the record (work order, certificate PDF)")]


def _device_event(kind: str, device: str, at: str | None, document: Path | None,
                  **fields: Any) -> None:
    """Sign the event, spool it, then send everything spooled to the resolver."""
    from carbon_protocol.suites import PrivateKey
    from identifier_resolver.device_events import EventSpool, new_event
    from identifier_resolver.errors import ResolverError

    s = _settings()
    if s.resolver_url is None or s.resolver_owner_key_file is None:
        _fail({"code": "invalid_settings", "message": "set GATEWAY_RESOLVER_URL and "
               "GATEWAY_RESOLVER_OWNER_KEY_FILE (the prefix owner's PEM key)"}, 2)
    try:
        key = PrivateKey.from_pem(s.resolver_owner_key_file.read_bytes())
        signed = new_event(kind, device, s.resolved_enterprise_id, key,  # type: ignore[arg-type]
                           at=at or datetime.now(UTC).isoformat(),
                           document=None if document is None else document.read_bytes(),
                           **fields)
    except OSError as exc:
        _fail({"code": "unreadable", "message": str(exc)}, 2)
    except (ResolverError, ProtocolError) as exc:
        _fail(exc.diagnostics(), 2)
    EventSpool(s.data_dir / "identifier-events").put(signed)
    console.print(f"{kind} {escape(signed.record.id)} signed and spooled", highlight=False)
    identifiers_flush()


@app.command("maintenance")
def maintenance_record(
    device: Annotated[str, typer.Argument(help="the device's identifier")],
    kind: Annotated[str, typer.Option(help="what was done, e.g. 'seal replaced'")],
    description: Annotated[str, typer.Option(help="details")],
    at: _AtOpt = None,
    performed_by: Annotated[str | None, typer.Option(help="who did it")] = None,
    document: _DocOpt = None,
) -> None:
    """Register a maintenance operation of DEVICE as an identifier with the resolver."""
    _device_event("maintenance", device, at, document, maintenance_kind=kind,
                  description=description, performed_by=performed_by)


@app.command("calibration")
def calibration_record(
    device: Annotated[str, typer.Argument(help="the device's identifier")],
    laboratory: Annotated[str, typer.Option(help="the calibration laboratory")],
    certificate: Annotated[str, typer.Option(help="the certificate number")],
    at: _AtOpt = None,
    next_due: Annotated[str | None, typer.Option(help="when the next one is due")] = None,
    document: _DocOpt = None,
) -> None:
    """Register a calibration of DEVICE as an identifier with the resolver."""
    _device_event("calibration", device, at, document, laboratory=laboratory,
                  certificate=certificate, next_due=next_due)


@app.command("identifiers-flush")
def identifiers_flush() -> None:
    """Send spooled maintenance and calibration records to the resolver (exit 3 if it
    cannot be reached: they stay spooled)."""
    from identifier_resolver.device_events import EventSpool, send_spooled
    from identifier_resolver.errors import NodeUnavailableError

    s = _settings()
    if s.resolver_url is None:
        _fail({"code": "invalid_settings", "message": "set GATEWAY_RESOLVER_URL"}, 2)
    try:
        report = send_spooled(EventSpool(s.data_dir / "identifier-events"), s.resolver_url,
                              timeout=s.timeout)
    except NodeUnavailableError as exc:
        _fail(exc.diagnostics(), 3)
    for ident in report.sent:
        console.print(f"registered {escape(ident)}", highlight=False)
    for ident, problem in report.refused.items():
        console.print(f"[bold red]refused[/] {escape(ident)}: "
                      f"{escape(str(problem.get('message')))} (moved to refused/)",
                      highlight=False)
    if report.pending:
        console.print(f"{report.pending} record(s) stay spooled", highlight=False)
    if report.refused:
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the ``carbon-gateway`` script."""
    app()


if __name__ == "__main__":
    main()
