-- Shared by the three hubsante.io kinds. Argo CD runs ConfigMap health scripts in a sandbox: Lua 5.1 with
-- only the base and table libraries (no string, math or os.time), so everything here is plain comparisons.
--
-- Order of the checks (the first that applies wins):
--   1. deletion pending (finalizer still held by the operator)      -> Progressing
--   2. no status yet                                                  -> Progressing
--   3. the operator has not observed the current metadata.generation  -> Progressing
--   4. kind-specific state (HubClient suspension)                     -> Suspended / Progressing
--   5. Ready=True                                                     -> Healthy
--   6. Ready=False with a failure reason, or a kind-specific failure  -> Degraded
--   7. anything else (Ready missing, Unknown, or False while working) -> Progressing

-- Reasons of Ready=False that need a human (fixing a spec, a Secret, the broker, a name conflict); any other
-- reason is a state the operator works through (Pending, CertificatePending, DispatcherNotReady...).
local COMMON_FAILURE_REASONS = {
  "InvalidSpec",
  "BrokerSecretNotFound",
  "BrokerSecretInvalid",
  "BrokerUnreachable",
  "BrokerAuthenticationFailed",
  "BrokerAccessRefused",
  "BrokerRejected",
  "BrokerError",
  "QueueConflict",
  "CASecretNotFound",
  "CASecretInvalid",
}

local function contains(list, value)
  if list == nil then
    return false
  end
  for _, item in ipairs(list) do
    if item == value then
      return true
    end
  end
  return false
end

local function findCondition(obj, conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function describe(condition)
  local text = condition.reason or condition.status or "Unknown"
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

local function health(status, message)
  return { status = status, message = message }
end

-- The generation the operator reported for Ready (or, failing that, for the whole status).
local function observedGeneration(obj, ready)
  if ready ~= nil and ready.observedGeneration ~= nil then
    return ready.observedGeneration
  end
  return obj.status.observedGeneration
end

local function assess(obj, kind)
  local metadata = obj.metadata or {}
  if metadata.deletionTimestamp ~= nil then
    return health("Progressing", "Being deleted: the operator is cleaning up the broker")
  end
  if obj.status == nil then
    return health("Progressing", "Waiting for the operator to report a status")
  end
  local ready = findCondition(obj, "Ready")
  local generation = metadata.generation
  if generation ~= nil then
    local observed = observedGeneration(obj, ready)
    if observed == nil then
      return health("Progressing", "Waiting for the operator to observe generation " .. generation)
    end
    if observed < generation then
      return health("Progressing", "Waiting for the operator to reconcile generation " .. generation
        .. " (last observed " .. observed .. ")")
    end
  end
  if kind.suspension ~= nil then
    local suspended = kind.suspension(obj, findCondition)
    if suspended ~= nil then
      return suspended
    end
  end
  if ready == nil then
    return health("Progressing", "Waiting for the Ready condition")
  end
  if ready.status == "True" then
    return health("Healthy", kind.summary(obj, findCondition) or describe(ready))
  end
  if ready.status == "False" then
    if contains(COMMON_FAILURE_REASONS, ready.reason) or contains(kind.failureReasons, ready.reason) then
      return health("Degraded", describe(ready))
    end
    if kind.failure ~= nil then
      local failure = kind.failure(obj, findCondition)
      if failure ~= nil then
        return health("Degraded", failure)
      end
    end
  end
  return health("Progressing", describe(ready))
end
