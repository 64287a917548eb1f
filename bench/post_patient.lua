-- wrk script: POST a new Patient each request (a distinct identifier, so the index grows as in
-- production).
local counter = 0
request = function()
  counter = counter + 1
  local body = '{"resourceType":"Patient","identifier":[{"system":"urn:oid:1.2.250.1.213.1.4.8","value":"bench-' ..
      tostring(math.random(1, 1000000000)) .. '-' .. counter .. '"}],"name":[{"family":"Dupré","given":["Hélène"]}],' ..
      '"gender":"female","birthDate":"1950-03-04"}'
  return wrk.format("POST", "/Patient", {["Content-Type"] = "application/fhir+json",
                                        ["Authorization"] = "Bearer " .. os.getenv("FLS_TOKEN")}, body)
end
