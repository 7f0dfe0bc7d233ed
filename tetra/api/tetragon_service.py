"""Tetragon's FineGuidanceSensors service: the API of tetra's CLI and of Tetragon's clients.

A client generated from Tetragon's own .proto files (tetra/api/tetragon/ has
their names and field numbers) talks to tetra unchanged, and so does tetra's
own CLI. The calls are made of service.TetraService's: its policy checks,
agent-thread calls, deadlines, status codes and event streams.

What differs from Tetragon, and why:

* ``aggregation_options`` is accepted and nothing is aggregated: Tetragon
  aggregates only process_accept and process_connect, which tetra does not
  emit, so its streams of tetra's event types are unaggregated too.
* ConfigureTracingPolicy applies ``enable`` and then ``mode``, as Tetragon
  does; enabling an enabled policy is FAILED_PRECONDITION, as in EnableTracingPolicy.
* GetDebug's process cache dump is not served (UNIMPLEMENTED).
* ListSensors reports tetra's base sensor and each policy's hooks (the policy
  as their ``collection``). A hook loads and unloads with its policy, so
  EnableSensor and DisableSensor of a hook enable or disable its whole policy
  (Tetragon deprecated both and now answers every call with an error; tetra
  keeps serving the old clients). A hook name several policies share is
  refused (INVALID_ARGUMENT, naming them), the base sensor cannot be disabled
  (FAILED_PRECONDITION). RemoveSensor answers as Tetragon does today: UNKNOWN,
  "RemoveSensor is deprecated" (DeleteTracingPolicy removes a policy).
* RuntimeHook(createContainer), sent by Tetragon's OCI hook before a
  container's first process, adds the container to its pod in the pod index
  (--enable-k8s-api; tetra/enrich/runtime_hook.py), so the container's first
  events carry their pod. It answers OK when there is nothing to do (no pod
  enrichment, a sandbox, fields missing; the log says why): a failed hook may
  stop the runtime from creating the container.
"""

import logging
from collections.abc import Iterator
from typing import Any

import grpc

from tetra import __version__
from tetra.api import tg_sensors, tg_tetragon
from tetra.api.convert import to_dict
from tetra.api.service import Context, TetraService
from tetra.api.status import tracing_policy_status
from tetra.agent.health import check
from tetra.enrich.runtime_hook import hooked_container
from tetra.status.model import PolicyLoadState, PolicyStatus

Json = dict[str, Any]
log = logging.getLogger(__name__)

# Tetragon's LogLevel (logrus's levels) <-> Python's logging levels; both ways lose nothing tetra uses.
_TO_PYTHON = {tg_sensors.LOG_LEVEL_PANIC: logging.CRITICAL, tg_sensors.LOG_LEVEL_FATAL: logging.CRITICAL,
              tg_sensors.LOG_LEVEL_ERROR: logging.ERROR, tg_sensors.LOG_LEVEL_WARN: logging.WARNING,
              tg_sensors.LOG_LEVEL_INFO: logging.INFO, tg_sensors.LOG_LEVEL_DEBUG: logging.DEBUG,
              tg_sensors.LOG_LEVEL_TRACE: logging.DEBUG - 5}


def log_level(python_level: int) -> int:
    """The LogLevel of a Python logging level: the most verbose one that level still shows."""
    if python_level >= logging.CRITICAL:
        return tg_sensors.LOG_LEVEL_FATAL
    if python_level < logging.DEBUG:
        return tg_sensors.LOG_LEVEL_TRACE
    return max(level for level, python in _TO_PYTHON.items() if python >= python_level)


class TetragonService:
    """One method per RPC of FineGuidanceSensors that tetra serves, each (request, context) -> response."""

    def __init__(self, tetra: TetraService) -> None:
        self.tetra = tetra

    # -- events ---------------------------------------------------------------------------

    def GetEvents(self, request: Any, context: Context) -> Iterator[bytes]:
        """Tetragon's GetEventsResponse for each event that passes the request's filters, serialized
        once and shared by the streams."""
        events, fields = self.tetra.selection(request, context, _field_filter_json)
        return self.tetra.stream(context, events, fields)

    # -- agent --------------------------------------------------------------------------------

    def GetHealth(self, request: Any, context: Context) -> Any:
        health = check(self.tetra.commands, self.tetra.stopping.is_set())
        return tg_tetragon.GetHealthStatusResponse(health_status=[tg_tetragon.HealthStatus(
            event="HEALTH_STATUS_TYPE_STATUS", status=health.status, details=health.details)])

    def GetVersion(self, request: Any, context: Context) -> Any:
        return tg_sensors.GetVersionResponse(version=__version__)

    def GetInfo(self, request: Any, context: Context) -> Any:
        return tg_sensors.GetInfoResponse(version=__version__, name="tetra")

    def GetDebug(self, request: Any, context: Context) -> Any:
        if request.flag != tg_sensors.CONFIG_FLAG_LOG_LEVEL:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "tetra serves only CONFIG_FLAG_LOG_LEVEL")
        return tg_sensors.GetDebugResponse(flag=request.flag, level=log_level(logging.getLogger().level))

    def SetDebug(self, request: Any, context: Context) -> Any:
        """The agent's log level (--log-level), until the next SetDebug or restart."""
        if request.flag != tg_sensors.CONFIG_FLAG_LOG_LEVEL or not request.HasField("level"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "SetDebug takes CONFIG_FLAG_LOG_LEVEL and a level")
        if request.level not in _TO_PYTHON:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown log level {request.level}")
        logging.getLogger().setLevel(_TO_PYTHON[request.level])
        logging.getLogger(__name__).warning("log level set to %s by %s",
                                            tg_sensors.LogLevel.Name(request.level), context.peer())
        return tg_sensors.SetDebugResponse(flag=request.flag, level=request.level)

    def RuntimeHook(self, request: Any, context: Context) -> Any:
        """createContainer: the new container joins its pod in the pod index (see the module's docstring)."""
        if not request.HasField("createContainer"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "RuntimeHook takes createContainer")
        create = request.createContainer
        pods = self.tetra.agent.pods
        if pods is None:
            log.debug("RuntimeHook for container %s: no pod enrichment (--enable-k8s-api)", create.containerID)
            return tg_tetragon.RuntimeHookResponse()
        hooked = hooked_container(create.cgroupsPath, dict(create.annotations), container_id=create.containerID,
                                  container_name=create.containerName, pod_name=create.podName,
                                  pod_uid=create.podUID, pod_namespace=create.podNamespace,
                                  image=create.containerImage)
        if isinstance(hooked, str):
            log.info("RuntimeHook for cgroup %s: nothing registered: %s", create.cgroupsPath, hooked)
        elif pods.add_container(hooked):
            log.info("RuntimeHook: container %s (%s) of pod %s/%s registered", hooked.container_id[:12],
                     hooked.container.name, hooked.pod_namespace, hooked.pod_name)
        return tg_tetragon.RuntimeHookResponse()

    # -- sensors: the base sensor and the policies' hooks -----------------------------------

    def ListSensors(self, request: Any, context: Context) -> Any:
        """The agent's own sensors, and each policy's hooks with the policy as their collection."""
        sensors = [tg_sensors.SensorStatus(name=name, enabled=policy is None or policy.state is PolicyLoadState.ENABLED,
                                           collection=policy.name if policy else "")
                   for name, policy in self._sensors(context)]
        return tg_sensors.ListSensorsResponse(sensors=sensors)

    def EnableSensor(self, request: Any, context: Context) -> Any:
        """Enables the sensor's policy (its hooks load together); the base sensor is always enabled."""
        policy = self._sensor_policy(request.name, context)
        if policy is not None:
            self.tetra.enable_policy(tg_sensors.EnableTracingPolicyRequest(
                name=policy.name, namespace=policy.namespace), context)
        return tg_sensors.EnableSensorResponse()

    def DisableSensor(self, request: Any, context: Context) -> Any:
        """Disables the sensor's policy (its hooks unload together); the base sensor cannot be."""
        policy = self._sensor_policy(request.name, context)
        if policy is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"sensor {request.name!r} is tetra's base sensor (process execs, clones and exits): "
                          "it cannot be disabled")
        self.tetra.disable_policy(tg_sensors.DisableTracingPolicyRequest(
            name=policy.name, namespace=policy.namespace), context)
        return tg_sensors.DisableSensorResponse()

    def RemoveSensor(self, request: Any, context: Context) -> Any:
        """What Tetragon answers today (a plain Go error: UNKNOWN)."""
        context.abort(grpc.StatusCode.UNKNOWN, "RemoveSensor is deprecated: DeleteTracingPolicy removes a "
                      "policy and its sensors")

    def _sensors(self, context: Context) -> list[tuple[str, PolicyStatus | None]]:
        """Each sensor as ListSensors names it, with its policy (None: the agent's base sensor)."""
        status = self.tetra.on_agent(context, self.tetra.agent.status)
        return ([(sensor.name, None) for sensor in status.sensors]
                + [(hook.hook, policy) for policy in status.policies for hook in policy.hooks])

    def _sensor_policy(self, name: str, context: Context) -> PolicyStatus | None:
        """The one policy sensor ``name`` belongs to, None for a base sensor; the call ends when
        there is no such sensor or several policies have one of that name."""
        found = [policy for sensor, policy in self._sensors(context) if sensor == name]
        if not found:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no sensor {name!r} (ListSensors names them)")
        if found == [None]:
            return None
        policies = sorted({f"{p.namespace}/{p.name}" if p.namespace else p.name for p in found if p is not None})
        if len(policies) > 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"sensor {name!r} is a hook of policies {', '.join(policies)}: "
                          "name the policy with ConfigureTracingPolicy")
        return next(p for p in found if p is not None)

    # -- tracing policies ------------------------------------------------------------------

    def ListTracingPolicies(self, request: Any, context: Context) -> Any:
        agent = self.tetra.agent
        policies, actions = self.tetra.on_agent(context, lambda: (agent.policies.summary(),
                                                                  dict(agent.pipeline.stats.actions)))
        return tg_sensors.ListTracingPoliciesResponse(policies=[tracing_policy_status(p, actions) for p in policies])

    def AddTracingPolicy(self, request: Any, context: Context) -> Any:
        """Tetragon answers with nothing; tetra's ``tetra_policies`` are the added policies' statuses."""
        added = self.tetra.add_policies(request, context)
        return tg_sensors.AddTracingPolicyResponse(tetra_policies=[tracing_policy_status(p) for p in added])

    def DeleteTracingPolicy(self, request: Any, context: Context) -> Any:
        self.tetra.delete_policy(request, context)
        return tg_sensors.DeleteTracingPolicyResponse()

    def EnableTracingPolicy(self, request: Any, context: Context) -> Any:
        return tg_sensors.EnableTracingPolicyResponse(
            tetra_policy=tracing_policy_status(self.tetra.enable_policy(request, context)))

    def DisableTracingPolicy(self, request: Any, context: Context) -> Any:
        return tg_sensors.DisableTracingPolicyResponse(
            tetra_policy=tracing_policy_status(self.tetra.disable_policy(request, context)))

    def ConfigureTracingPolicy(self, request: Any, context: Context) -> Any:
        """``enable`` first, then ``mode``; a failure leaves what was done before it done. tetra's
        ``tetra_policy`` is the policy's status afterwards."""
        modes = {tg_sensors.TP_MODE_ENFORCE: "enforce", tg_sensors.TP_MODE_MONITOR: "monitor"}
        if request.HasField("mode") and request.mode not in modes:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "mode must be TP_MODE_ENFORCE or TP_MODE_MONITOR")
        policy = None
        if request.HasField("enable"):
            change = self.tetra.enable_policy if request.enable else self.tetra.disable_policy
            policy = change(request, context)
        if request.HasField("mode"):
            policy = self.tetra.set_policy_mode(request, modes[request.mode], context)
        response = tg_sensors.ConfigureTracingPolicyResponse()
        if policy is not None:
            response.tetra_policy.CopyFrom(tracing_policy_status(policy))
        return response


def _field_filter_json(message: Any) -> Json:
    """A FieldFilter as --field-filters writes it: Tetragon's FieldMask of paths becomes the
    comma-separated string tetra.filters reads."""
    out = to_dict(message)
    if "fields" in out:
        out["fields"] = ",".join(message.fields.paths)
    return out
