"""Small policies that would cost minutes or crash a naive loader, built here rather than committed.

Shared by the loader's unit tests and the API's end-to-end tests, which send the same bytes.
"""


def policy(name: str, spec: str = "{}", metadata: str = "") -> str:
    return (f"apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: {name}\n{metadata}"
            f"spec: {spec}\n")


def merge_bomb(levels: int = 7, width: int = 10) -> str:
    """Each anchored mapping merges the previous one ``width`` times: some 600 bytes that a loader
    copying merged entries without counting them expands to ``width ** levels`` entries.

    The anchors sit in ``metadata.managedFields``, which is never read: the expansion is the only
    problem of the document."""
    anchors = ["    - &l0 {a: b}"]
    for level in range(1, levels + 1):
        anchors.append(f"    - &l{level} {{<<: [{', '.join([f'*l{level - 1}'] * width)}]}}")
    return policy("merge-bomb", f"{{kprobes: [{{<<: *l{levels}, call: sys_read}}]}}",
                  "  managedFields:\n" + "\n".join(anchors) + "\n")


def merge_chain(length: int) -> str:
    """``length`` mappings, each merging the one before: as deep as ``length`` when read."""
    anchors = ["    - &c0 {message: chained}"] + [f"    - &c{i} {{<<: *c{i - 1}}}" for i in range(1, length + 1)]
    return policy("merge-chain", f"{{kprobes: [{{<<: *c{length}, call: sys_read}}]}}",
                  "  managedFields:\n" + "\n".join(anchors) + "\n")
