"""``DirectoryService.on_change``: every stored change of a user or group calls the hooks
(what the policy engine's cache relies on); a change that stores nothing calls none."""

from __future__ import annotations

from tabard.directory import Directory, MemberRef


def test_every_stored_change_calls_the_hooks(directory: Directory) -> None:
    people = directory.people
    calls: list[int] = []
    people.on_change(lambda: calls.append(1))
    people.on_change(lambda: (_ for _ in ()).throw(RuntimeError("a failing hook")))

    alice = people.add_user("alice")
    assert len(calls) == 1
    group = people.create_group({"displayName": "engineering"})
    assert len(calls) == 2
    people.update_group(group.id, lambda g: (g.attributes, [MemberRef(alice.id)]))
    assert len(calls) == 3
    people.update_group(group.id, lambda g: (g.attributes, [MemberRef(alice.id)]))
    assert len(calls) == 3  # nothing changed, nothing stored
    people.set_active("alice", False)
    assert len(calls) == 4
    people.delete_group(group.id)
    people.delete_user(alice.id)
    assert len(calls) == 6
