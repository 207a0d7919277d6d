-- VHostVersion: Ready means the vhost is claimed and provisioned, its model bundle found and its dispatchers
-- ready (or scaled to zero on purpose); its reason is the first of those that is not.
local kind = {
  failureReasons = {
    "PerimeterNotFound",
    "PerimeterInvalid",
    "ClaimedByOtherNamespace",
    "ModelsNotFound",
    "ModelConfigMapNotFound",
    "DeploymentRejected",
    "InvalidWorkload",
  },
}

function kind.summary(obj)
  local status = obj.status
  local message = "vhost " .. (status.vhost or "?")
  if status.dispatcher ~= nil and status.dispatcher.replicas ~= nil then
    message = message .. ", " .. (status.dispatcher.readyReplicas or 0) .. "/" .. status.dispatcher.replicas
      .. " dispatcher(s) ready"
  end
  if status.clients ~= nil then
    message = message .. ", " .. status.clients .. " client(s)"
  end
  if obj.spec ~= nil and obj.spec.state == "deprecated" then
    message = message .. " (deprecated)"
  end
  return message
end

return assess(obj, kind)
