"""The bounds a policy must stay within, each one an error when exceeded.

BPF programs are bounded loops over fixed-size tables, so a policy that asks for
more than a table holds cannot work. Tetragon has let some of these overflow
silently (extra values ignored, which users found the hard way); here every
limit is checked by the loader and reported with the place that exceeds it,
never truncated. The same table, with the reasons, is in docs/policy-limits.md.

==========================  =======  ===================================================
constant                    value    what is bounded
==========================  =======  ===================================================
MAX_FILE_BYTES              4 MiB    size of one policy file
MAX_DOCUMENTS               64       YAML documents (``---``) in one file
MAX_DEPTH                   64       nesting of YAML mappings and lists (a policy needs
                                     about 10; the C parser recurses per level)
MAX_NODES                   200000   YAML nodes walked in one document, every alias
                                     use and every merged (``<<``) entry counted again
                                     (stops "billion laughs")
MAX_FILE_NODES              1000000  YAML nodes walked in one file, all documents
                                     together (64 alias bombs would cost a minute)
MAX_NUMBER_DIGITS           100      characters of an integer (a policy's numbers fit
                                     in 64 bits; Python refuses to read 4300 digits)
MAX_HOOKS                   64       kprobes + fentries + tracepoints + uprobes +
                                     lsmhooks + usdts of one policy
MAX_SELECTORS               5        selectors of one hook
MAX_ARGS                    6        ``args`` of one hook (a syscall has 6)
MAX_DATA                    6        ``data`` entries of one hook
MAX_MATCH_ARGS              5        ``matchArgs`` + ``matchData`` of one selector
MAX_MATCH_VALUES            1024     ``values`` of one matchArgs/matchData/matchReturnArgs
                                     (the compiler allows 16 for integer operators,
                                     which become C comparisons; strings, paths and
                                     addresses go into maps of 4096 entries a policy)
MAX_MATCH_BINARIES          1        ``matchBinaries`` (and ``matchParentBinaries``)
                                     entries of one selector
MAX_BINARY_VALUES           16       ``values`` of one matchBinaries entry
MAX_PID_VALUES              16       ``values`` of one matchPIDs entry
MAX_MATCH_NAMESPACES        10       ``matchNamespaces`` entries of one selector
MAX_NAMESPACE_VALUES        4        ``values`` of one matchNamespaces entry
MAX_NAMESPACE_CHANGES       1        ``matchNamespaceChanges`` entries of one selector
MAX_ACTIONS                 3        ``matchActions`` (and ``matchReturnActions``) of one
                                     selector
MAX_STRING_VALUE            256      bytes of an Equal/NotEqual/Prefix/NotPrefix value
MAX_POSTFIX_VALUE           127      bytes of a Postfix/NotPostfix value
MAX_SUBSTRING_VALUE         99       bytes of a SubString/SubStringIgnCase value
MAX_BINARY_PATH             255      bytes of a matchBinaries In/NotIn path
MAX_MESSAGE                 256      characters of a hook's ``message``
MAX_URL                     2048     bytes of a GetUrl action's ``argUrl``
MAX_TAGS                    16       ``tags`` of one hook
MAX_ENFORCERS               1        ``spec.enforcers`` entries
MAX_POLICIES                128      policies registered in the agent when one is added
                                     over the API or from Kubernetes (each loaded one
                                     holds BPF programs and maps)
==========================  =======  ===================================================

Where the bound is the kernel's, the value comes from tetra/wire/constants.py,
the twin of the probes' headers, never a copy.
"""

from tetra.wire import constants as wire

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DOCUMENTS = 64
MAX_DEPTH = 64
MAX_NODES = 200_000
MAX_FILE_NODES = 1_000_000
MAX_NUMBER_DIGITS = 100
MAX_HOOKS = wire.MAX_HOOKS
MAX_SELECTORS = 5
MAX_ARGS = wire.MAX_ARGS
MAX_DATA = 6
MAX_MATCH_ARGS = 5
MAX_MATCH_VALUES = 1024
MAX_MATCH_BINARIES = 1
MAX_BINARY_VALUES = 16
MAX_PID_VALUES = 16
MAX_MATCH_NAMESPACES = 10
MAX_NAMESPACE_VALUES = 4
MAX_NAMESPACE_CHANGES = 1
MAX_ACTIONS = 3
MAX_STRING_VALUE = 256
MAX_POSTFIX_VALUE = wire.POSTFIX_MAX - 1  # the reversed copy in BPF holds its terminator too
MAX_SUBSTRING_VALUE = 99
MAX_BINARY_PATH = wire.BINARY_MAX - 1  # the binary map keeps the NUL too
MAX_URL = 2048
MAX_MESSAGE = 256
MAX_TAGS = 16
MAX_ENFORCERS = 1
MAX_POLICIES = 128
