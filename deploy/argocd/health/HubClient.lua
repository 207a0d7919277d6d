-- HubClient: Ready means the certificate is valid and access is provisioned on every listed vhost (or, when
-- suspended, revoked everywhere); its reason is the first of those that is not.
local kind = {
  failureReasons = {
    "CertificateExpired",
    "CertificateInvalid",
    "CertManagerNotInstalled",
    "SecretConflict",
    "VHostVersionNotFound",
    "UsernameConflict",
    "ClientIdConflict",
    "ReservedUsername",
    "InvalidAccess",
  },
}

-- spec.suspended is a deliberate state: Argo CD shows it as Suspended once the operator has revoked access.
function kind.suspension(obj, findCondition)
  if obj.spec == nil or obj.spec.suspended ~= true then
    return nil
  end
  local suspended = findCondition(obj, "Suspended")
  if suspended ~= nil and suspended.status == "True" then
    return health("Suspended", "Access revoked (spec.suspended): " .. describe(suspended))
  end
  return health("Progressing", "Suspending: waiting for the operator to revoke access")
end

function kind.summary(obj, findCondition)
  local status = obj.status
  local vhosts = status.vhosts or {}
  local message = "user " .. (status.username or "?") .. " on " .. (status.readyVhosts or #vhosts) .. " vhost(s)"
  if status.certificate ~= nil and status.certificate.notAfter ~= nil then
    message = message .. ", certificate valid until " .. status.certificate.notAfter
  end
  local deprecated = findCondition(obj, "VHostDeprecated")
  if deprecated ~= nil and deprecated.status == "True" then
    message = message .. " (" .. describe(deprecated) .. ")"
  end
  return message
end

-- A vhost whose access failed makes the client Degraded even while Ready is still being worked out.
function kind.failure(obj)
  for _, vhost in ipairs(obj.status.vhosts or {}) do
    if vhost.state == "Failed" then
      return "vhost " .. (vhost.vhost or vhost.vhostVersion) .. ": " .. (vhost.message or "access failed")
    end
  end
  return nil
end

return assess(obj, kind)
