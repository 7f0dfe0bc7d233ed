"""matchCapabilityChanges, matchNamespaceChanges and isNamespaceCapability as C conditions: which set,
which namespaces, the host's user namespace, and the baseline moved on when their selector matched
(tests/e2e/test_change_selectors.py runs them in the kernel)."""

import pytest

from tests.unit.compiler.test_compiler import OPEN, compiled, errors
from tetra.compiler.selectors import host_namespace


def selectors(text: str) -> str:
    c = compiled(OPEN + "    selectors:\n" + text)
    return c.c_text[c.c_text.index("/* hook 0"):]


@pytest.mark.parametrize("kind,which", [("Permitted", 0), ("Effective", 1), ("inheritable", 2)])
def test_a_capability_change_compares_the_set_with_its_baseline(kind: str, which: int) -> None:
    code = selectors(f"""    - matchCapabilityChanges:
      - type: {kind}
        operator: NotIn
        values: ["CAP_SETUID", "cap_sys_admin"]
""")
    mask = 1 << 7 | 1 << 21
    assert f"tetra_caps_changed({which}, TETRA_OFF_CRED_CAP_{kind.upper()}, {mask}ULL, 0)" in code
    assert code.index("tetra_rebase(1, 0);") < code.index("tetra_gen_emit(g);")


@pytest.mark.parametrize("operator,mask", [
    ("In", 1 << 2 | 1 << 4),  # mnt, pid_for_children: their places in struct tetra_ns
    ("NotIn", 0b1111111111 & ~(1 << 2 | 1 << 4)),  # every other namespace
])
def test_namespace_changes_name_namespaces_by_their_place(operator: str, mask: int) -> None:
    code = selectors(f"""    - matchNamespaceChanges:
      - operator: {operator}
        values: ["Mnt", "pidforchildren"]
""")
    assert f"tetra_ns_changed({mask})" in code
    assert "tetra_rebase(0, 1);" in code


def test_a_namespace_capability_is_one_outside_the_host_user_namespace() -> None:
    host = host_namespace("user")
    assert host is not None
    code = selectors("""    - matchCapabilities:
      - type: Effective
        operator: In
        isNamespaceCapability: true
        values: ["CAP_SYS_ADMIN"]
""")
    assert f"(tetra_user_ns_inum() != {host} && ((tetra_caps(TETRA_OFF_CRED_CAP_EFFECTIVE) & {1 << 21}ULL) != 0))" \
        in code
    assert "tetra_rebase" not in code  # nothing to move on: the capability is judged as it is now


@pytest.mark.parametrize("text,message", [
    ("""    - matchNamespaceChanges:
      - operator: In
        values: ["Mount"]
""", "p.yaml:17:18: spec.kprobes[0].selectors[0].matchNamespaceChanges[0].values[0]: unknown namespace 'Mount' (did you mean 'Mnt'?)"),
    ("""    - matchCapabilityChanges:
      - type: Effective
        operator: Equal
        values: ["CAP_SYS_ADMIN"]
""", "p.yaml:17:19: spec.kprobes[0].selectors[0].matchCapabilityChanges[0].operator"),
    ("""    - matchCapabilityChanges:
      - type: Bounding
        operator: In
        values: ["CAP_SYS_ADMIN"]
""", "p.yaml:16:15: spec.kprobes[0].selectors[0].matchCapabilityChanges[0].type"),
    ("""    - matchCapabilityChanges:
      - operator: In
        isNamespaceCapability: maybe
        values: ["CAP_SYS_ADMIN"]
""", "p.yaml:17:32: spec.kprobes[0].selectors[0].matchCapabilityChanges[0].isNamespaceCapability"),
    ("""    - matchCapabilityChanges:
      - operator: In
        values: ["CAP_SYS_ADMN"]
""", "p.yaml:17:18: spec.kprobes[0].selectors[0].matchCapabilityChanges[0].values[0]"),
])
def test_bad_change_filters_are_refused_where_they_are(text: str, message: str) -> None:
    assert message in errors(OPEN + "    selectors:\n" + text)
