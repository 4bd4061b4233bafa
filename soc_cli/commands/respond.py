"""``soc respond ALERT``: walk the alert's response playbook, recording each step in its history."""

from __future__ import annotations

from pathlib import Path

import typer

from locales import _
from soc_cli.context import StoreOption, analyst, use_store
from soc_cli.output import confirm, console, safe


def register(app: typer.Typer) -> None:
    @app.command("respond")
    def respond(
        alert_id: str = typer.Argument(..., metavar="ID", help="alert id (or a unique prefix of it)"),
        playbook: str = typer.Option(None, "--playbook", help="playbook id or name, when several match"),
        answers: str = typer.Option(None, "--answers",
                                    help="non-interactive: comma-separated answers in step order (done/skipped, yes/no)"),
        list_only: bool = typer.Option(False, "--list", help="only list the playbooks that match the alert"),
        folders: list[Path] = typer.Option(None, "--playbooks", help="extra folder of response playbooks"),
        store: str = StoreOption,
    ) -> None:
        """Follow the response playbook linked to the alert's ATT&CK techniques, step by step."""

        from detections.lifecycle import find_alert
        from eventstore.store import AlertChange
        from playbooks.response import Step, playbooks_for, walk

        s = use_store(store)
        alert = find_alert(s, alert_id)
        alert_id = str(alert["event.id"])
        matching = playbooks_for(alert, folders or [])
        if list_only or not matching:
            if not matching:
                console.print(safe(_("no response playbook covers {techniques}").format(
                    techniques=", ".join(sorted(alert.get("threat.technique.id") or [])))))
            for pb in matching:
                console.print(safe(f"{pb.id}  {pb.name}  ({', '.join(pb.techniques)})"))
            return
        chosen = [pb for pb in matching if playbook in (pb.id, pb.name)] if playbook else matching[:1]
        if not chosen:
            raise ValueError(_("no matching playbook {name}: `soc respond {id} --list`").format(
                name=repr(playbook), id=alert_id))
        pb = chosen[0]
        variables = {"__entity__": str(alert.get("ztsoc.alert.entity.value") or ""), "__alert_id__": alert_id}
        scripted = [a.strip() for a in answers.split(",")] if answers else None
        actor = analyst()
        console.print(safe(pb.name, "bold"))
        console.print(safe(pb.description + "\n", multiline=True))

        def ask(step: Step) -> str:
            title = safe(step.name, "bold")
            if step.agent:
                title.append_text(safe(f"  ({step.agent})", "dim"))
            console.print(title)
            if step.description:
                console.print(safe(f"  {step.description}", multiline=True))
            for command in step.commands:
                console.print(safe(f"  $ {command}", "cyan"))
            if step.kind == "if-condition":
                if scripted is not None:
                    return scripted.pop(0) if scripted else "no"
                return "yes" if confirm(f"  {step.condition}?", default=True) else "no"
            if scripted is not None:
                return scripted.pop(0) if scripted else "skipped"
            return "done" if confirm("  " + _("done?"), default=True) else "skipped"

        steps = 0
        for step, answer in walk(pb, ask, variables):
            s.update_alert(alert_id, AlertChange(actor, "respond", {}, note=f"[{pb.name}] {step.name}: {answer}"))
            steps += 1
        console.print(safe("\n" + _("recorded {steps} steps in the history of {id} (`soc alerts show {id}`)").format(
            steps=steps, id=alert_id), multiline=True))
