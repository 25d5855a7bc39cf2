"""Pod policy for deploy/kubernetes/ that JSON schemas cannot express.

Run by `cargo xtask deploy-check kubernetes` with the validator's venv Python (PyYAML comes with
kubernetes-validate). Arguments: the manifest files. Exits 1 listing every broken rule.
"""

import sys
import tomllib

import yaml

problems = []


def need(condition, message):
    if not condition:
        problems.append(message)


docs = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        docs.extend((path, d) for d in yaml.safe_load_all(f) if d)

by_kind = {}
for path, doc in docs:
    by_kind.setdefault(doc["kind"], []).append(doc)

configs = by_kind.get("ConfigMap", [])
need(len(configs) == 1, "one ConfigMap holds serve.toml")
config = tomllib.loads(configs[0]["data"]["serve.toml"]) if configs else {}
need("basic_auth" not in config, "credentials come from the Secret, not the ConfigMap")
admin_port = config.get("admin_port")
need(admin_port is not None, "serve.toml sets admin_port (the probes' port)")

for sts in by_kind.get("StatefulSet", []):
    name = sts["metadata"]["name"]
    pod = sts["spec"]["template"]["spec"]
    headless = [
        s for s in by_kind.get("Service", [])
        if s["metadata"]["name"] == sts["spec"]["serviceName"]
    ]
    need(headless and headless[0]["spec"].get("clusterIP") == "None",
         f"{name}: serviceName names a headless Service (clusterIP: None)")
    need(pod.get("automountServiceAccountToken") is False,
         f"{name}: no service account token")
    psc = pod.get("securityContext", {})
    need(psc.get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
    need(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
         f"{name}: pod seccompProfile RuntimeDefault")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    shutdown = str(config.get("shutdown_grace", "10s"))
    need(shutdown.endswith("s") and shutdown[:-1].isdigit() and int(shutdown[:-1]) < grace,
         f"{name}: terminationGracePeriodSeconds ({grace}) exceeds shutdown_grace ({shutdown})")
    for c in pod["containers"]:
        cname = f"{name}/{c['name']}"
        sc = c.get("securityContext", {})
        need(sc.get("readOnlyRootFilesystem") is True, f"{cname}: readOnlyRootFilesystem")
        need(sc.get("allowPrivilegeEscalation") is False, f"{cname}: allowPrivilegeEscalation false")
        need(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{cname}: drops ALL capabilities")
        need(not sc.get("capabilities", {}).get("add"), f"{cname}: adds no capability")
        need(not sc.get("privileged"), f"{cname}: not privileged")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                need(r in res.get(kind, {}), f"{cname}: resources.{kind}.{r}")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        need(ports.get("admin") == admin_port,
             f"{cname}: the admin port ({ports.get('admin')}) is serve.toml's admin_port ({admin_port})")
        need(ports.get("session") == config.get("port", 1337),
             f"{cname}: the session port is serve.toml's port")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c.get(probe, {}).get("httpGet", {})
            need(get.get("path") == path and get.get("port") == "admin",
                 f"{cname}: {probe} is GET {path} on the admin port")

need(by_kind.get("NetworkPolicy"), "a NetworkPolicy limits who reaches the pods")
need(by_kind.get("PodDisruptionBudget"), "a PodDisruptionBudget bounds voluntary disruptions")

if problems:
    print("pod policy: broken rules:")
    for p in problems:
        print(f"  - {p}")
    sys.exit(1)
print(f"pod policy: {len(docs)} resources meet it")
