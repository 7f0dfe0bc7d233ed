"""The composition root: the one place that knows every part and wires them together.

::

    tetra agent (cli/agent_cmd.py) ──AgentConfig──> build.build_agent()
        CommandQueue ──────────────── one, drained by the agent loop; given to the API and the watch
        exporters (JSON file, stdout, OTLP) behind ChainSink (the export filters)     tetra.export
        ApiServer: its Broadcaster a sink, itself a service                           tetra.api
        metrics endpoint: a service, and a reader of the status every tick           services.py
        PodWatcher + PodEnricher: the process cache's enrichment stage                tetra.enrich
        TracingPolicy objects' watch: a service                                       services.py
              │
              └──> Agent(config, node, Parts)  (tetra.agent: the sensors, the pipeline, the loop)

    tetra replay (cli/replay_cmd.py) ──> replay.Replay: the same exporters and filters, fed a recording

Nothing below imports this package: ``tetra.agent`` knows nothing of the API,
the API knows the agent, and both read the status model (tetra/status) that
the agent fills (tests/unit/test_imports.py holds the packages to it).
"""
