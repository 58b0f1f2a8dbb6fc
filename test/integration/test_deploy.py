"""Deployment files (deploy/), checked without a container engine or a cluster.

No container engine or Kubernetes runs on our machines, so each promise of the deployment is
checked with the tool that owns it, offline: Debian's docker-compose renders the compose file;
the Kubernetes 1.27 API schemas (npm package kubernetes-models, run by test/deploy/
validate-k8s.cjs under node, strict about unknown fields) validate every manifest; the
NetworkPolicy and Services are evaluated with Kubernetes' rules to show that remote-proxy's
internal port 3801 is reachable only from api-server and the ops namespaces; the variable names
in every file are compared with what the daemons print in --help; the image recipe is compared
with the libraries the built binaries actually link. Each checker also gets a deliberately
broken input, to show it can fail.
"""
import copy
import glob
import ipaddress
import os
import re
import shutil
import subprocess
import tempfile

import yaml

from harness import BIN, ROOT, RemoteProxy, check, eq, require_services

DEPLOY = os.path.join(ROOT, "deploy")
K8S = os.path.join(DEPLOY, "k8s")
COMPOSE = os.path.join(DEPLOY, "docker-compose.yml")
ENV_EXAMPLE = os.path.join(DEPLOY, ".env.example")
NODE_DIR = os.path.join(ROOT, "test", "deploy")

INTERNAL_PORT = 3801
TUNNEL_PORT = 3800
API_PORT = 3721
IMAGE_UID = 10001
OPS_LABEL = {"edgegate.io/ops": "true"}
# Declared in the deploy files ahead of the OIDC issue; the daemons do not read them yet.
OIDC_VARS = {f"EDGEGATE_OIDC_{s}" for s in ("ISSUER", "CLIENT_ID", "CLIENT_SECRET", "AUTH_METHOD",
                                            "REDIRECT_URI", "SCOPES", "CA_FILE",
                                            "POST_LOGOUT_REDIRECT_URI")}
# Values that must never be written into a committed file.
SECRET_VARS = {"EDGEGATE_DATABASE_URL", "EDGEGATE_INTERNAL_TOKEN", "EDGEGATE_SESSION_SECRET",
               "EDGEGATE_MFA_KEY", "EDGEGATE_OIDC_CLIENT_SECRET", "POSTGRES_PASSWORD",
               "EDGEGATE_MFA_RETIRED_KEYS"}
# Only api-server uses these; remote-proxy must not be given them.
API_ONLY_SECRETS = {"EDGEGATE_DATABASE_URL", "EDGEGATE_SESSION_SECRET", "EDGEGATE_MFA_KEY",
                    "EDGEGATE_OIDC_CLIENT_SECRET", "EDGEGATE_MFA_RETIRED_KEYS"}
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


# ---------------------------------------------------------------- inputs

def k8s_files():
    names = sorted(f for f in os.listdir(K8S) if f.endswith((".yaml", ".yml")))
    # The Secret template is not *.yaml (so `kubectl apply -f deploy/k8s/` skips it) but is
    # checked like the rest.
    return [os.path.join(K8S, f) for f in names] + [os.path.join(K8S, "secret.yaml.example")]


def k8s_docs():
    docs = []
    for path in k8s_files():
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d is not None]
    return docs


def of_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def named(docs, kind, name):
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    eq(len(found), 1, f"number of {kind} named {name}")
    return found[0]


def pod_templates(docs):
    """(workload, pod template) for every object that makes pods."""
    out = []
    for d in docs:
        if d.get("kind") in POD_KINDS:
            out.append((d, d["spec"]["template"]))
    return out


def containers(template):
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def env_file_values(path):
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, sep, v = line.partition("=")
                check(sep == "=", f"{path}: not NAME=value: {line!r}")
                values[k] = v
    return values


def filled_env_file(tmp):
    """.env.example with every secret filled in, as an operator would."""
    values = env_file_values(ENV_EXAMPLE)
    values.update({
        "POSTGRES_PASSWORD": "pw-for-the-test",
        "EDGEGATE_DATABASE_URL": "postgresql://edgegate:pw-for-the-test@postgres:5432/edgegate",
        "EDGEGATE_INTERNAL_TOKEN": "t" * 64,
        "EDGEGATE_SESSION_SECRET": "s" * 64,
        "EDGEGATE_MFA_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    })
    path = os.path.join(tmp, "filled.env")
    with open(path, "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in values.items())
    return path


def compose_config(compose_file, env_file):
    """`docker-compose config`: (exit status, rendered document or None, stderr)."""
    check(shutil.which("docker-compose"), "docker-compose missing: deploy/deps.sh installs it")
    r = subprocess.run(["docker-compose", "-f", compose_file, "--env-file", env_file, "config"],
                       capture_output=True, text=True, timeout=60)
    doc = yaml.safe_load(r.stdout) if r.returncode == 0 else None
    return r.returncode, doc, r.stderr


def help_vars(daemon):
    r = subprocess.run([os.path.join(BIN, daemon), "--help"], capture_output=True, text=True,
                       timeout=10)
    eq(r.returncode, 0, f"{daemon} --help exit status")
    found = set(re.findall(r"^\s+(EDGEGATE_[A-Z0-9_]+)\s", r.stdout, re.M))
    check(found, f"{daemon} --help lists no EDGEGATE_* variable:\n{r.stdout}")
    return found


def readme_config_vars():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    m = re.search(r"^## Configuration\n(.*?)^## ", text, re.M | re.S)
    check(m, "README has no Configuration section")
    names = set()
    for line in m.group(1).splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`(EDGEGATE_[A-Z0-9_]+)`", line.split("|")[1]))
    return names


def validate_k8s(paths):
    """Runs validate-k8s.cjs; returns one result dict per YAML document."""
    setup = subprocess.run(["sh", os.path.join(NODE_DIR, "setup.sh")], capture_output=True,
                           text=True, timeout=600)
    check(setup.returncode == 0, f"test/deploy/setup.sh failed:\n{setup.stderr[-3000:]}")
    r = subprocess.run(["node", os.path.join(NODE_DIR, "validate-k8s.cjs"), *paths],
                       capture_output=True, text=True, timeout=120)
    check(r.returncode in (0, 1) and r.stdout, f"validate-k8s.cjs crashed:\n{r.stderr[-3000:]}")
    results = [yaml.safe_load(line) for line in r.stdout.splitlines()]
    eq(r.returncode, 1 if any(not x["ok"] for x in results) else 0, "validator exit status")
    return results


# ---------------------------------------------------------------- Kubernetes semantics

def selector_matches(selector, labels):
    """A LabelSelector against a label set (an empty selector matches everything)."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def named_ports(template):
    return {p["name"]: p["containerPort"] for c in containers(template) for p in c.get("ports", [])
            if "name" in p}


def resolve_port(value, template):
    return named_ports(template).get(value) if isinstance(value, str) else value


def peer_admits(peer, policy_ns, src):
    """One NetworkPolicyPeer against a source {namespace, ns_labels, pod_labels, ip}."""
    if "ipBlock" in peer:
        ip = ipaddress.ip_address(src["ip"])
        block = peer["ipBlock"]
        return (ip in ipaddress.ip_network(block["cidr"]) and
                not any(ip in ipaddress.ip_network(x) for x in block.get("except", [])))
    if src["pod_labels"] is None:  # outside the cluster: only ipBlock peers can match
        return False
    if "namespaceSelector" in peer:
        ns_ok = selector_matches(peer["namespaceSelector"], src["ns_labels"])
    else:
        ns_ok = src["namespace"] == policy_ns
    pod_ok = selector_matches(peer["podSelector"], src["pod_labels"]) if "podSelector" in peer else True
    return ns_ok and pod_ok


def ingress_admitted(policies, pod_ns, pod_labels, template, port, src):
    """Kubernetes' rule: a pod selected by no ingress policy admits everything; otherwise a
    connection is admitted when some rule of some selecting policy admits both port and source."""
    selecting = [p for p in policies
                 if p["metadata"].get("namespace") == pod_ns
                 and selector_matches(p["spec"].get("podSelector", {}), pod_labels)
                 and "Ingress" in p["spec"].get("policyTypes", ["Ingress"])]
    if not selecting:
        return True
    for p in selecting:
        for rule in p["spec"].get("ingress") or []:
            ports = rule.get("ports")
            port_ok = not ports
            for rp in ports or []:
                if rp.get("protocol", "TCP") != "TCP":
                    continue
                if "port" not in rp:
                    port_ok = True
                    continue
                first = resolve_port(rp["port"], template)
                if first is not None and first <= port <= rp.get("endPort", first):
                    port_ok = True
            peers = rule.get("from")
            if port_ok and (not peers or any(peer_admits(x, pod_ns, src) for x in peers)):
                return True
    return False


def internal_port_violations(docs):
    """Who may open remote-proxy's ports, per the manifests' NetworkPolicies: a list of what is
    wrong (empty when 3801 admits exactly api-server and ops namespaces, and 3800 everyone)."""
    ns_doc = of_kind(docs, "Namespace")[0]
    ns = ns_doc["metadata"]["name"]
    ns_labels = dict(ns_doc["metadata"].get("labels") or {}, **{"kubernetes.io/metadata.name": ns})
    proxy = named(docs, "Deployment", "remote-proxy")["spec"]["template"]
    api_labels = named(docs, "Deployment", "api-server")["spec"]["template"]["metadata"]["labels"]
    migrate_labels = of_kind(docs, "Job")[0]["spec"]["template"]["metadata"]["labels"]
    policies = of_kind(docs, "NetworkPolicy")

    def pod(namespace, nslabels, labels, ip="10.244.3.7"):
        return {"namespace": namespace, "ns_labels": dict(nslabels, **{"kubernetes.io/metadata.name": namespace}),
                "pod_labels": labels, "ip": ip}

    allowed = {
        "an api-server pod": pod(ns, ns_labels, api_labels),
        "a pod in a namespace labelled edgegate.io/ops=true": pod("ops", OPS_LABEL, {"app": "toolbox"}),
    }
    refused = {
        "an agent on the internet": {"namespace": None, "ns_labels": {}, "pod_labels": None, "ip": "203.0.113.9"},
        "a node-external address in a private range": {"namespace": None, "ns_labels": {}, "pod_labels": None, "ip": "10.0.0.5"},
        "another pod of the edgegate namespace": pod(ns, ns_labels, {"app": "something-else"}),
        "the migration job's pod": pod(ns, ns_labels, migrate_labels),
        "a remote-proxy pod": pod(ns, ns_labels, proxy["metadata"]["labels"]),
        "a pod labelled like api-server in another namespace": pod("intruder", {}, api_labels),
        "a pod in an unlabelled namespace": pod("default", {}, {"app": "toolbox"}),
        "a pod in a namespace with edgegate.io/ops=false": pod("dev", {"edgegate.io/ops": "false"}, {"app": "x"}),
    }
    problems = []
    labels = proxy["metadata"]["labels"]
    if not any(selector_matches(p["spec"].get("podSelector", {}), labels) for p in policies):
        problems.append("no NetworkPolicy selects the remote-proxy pods")
    if any(selector_matches(p["spec"].get("podSelector", {}), api_labels) and
           "Ingress" in p["spec"].get("policyTypes", ["Ingress"]) for p in policies):
        problems.append("a policy meant for remote-proxy also isolates api-server pods")
    for what, src in allowed.items():
        if not ingress_admitted(policies, ns, labels, proxy, INTERNAL_PORT, src):
            problems.append(f"{INTERNAL_PORT} refused to {what}")
    for what, src in refused.items():
        if ingress_admitted(policies, ns, labels, proxy, INTERNAL_PORT, src):
            problems.append(f"{INTERNAL_PORT} admitted from {what}")
    for what, src in {**allowed, **refused}.items():
        if not ingress_admitted(policies, ns, labels, proxy, TUNNEL_PORT, src):
            problems.append(f"{TUNNEL_PORT} refused to {what}")
    return problems


def internal_exposure_violations(docs):
    """Every way the manifests could make 3801 reachable from outside the cluster."""
    problems = []
    templates = pod_templates(docs)
    for svc in of_kind(docs, "Service"):
        spec = svc["spec"]
        name = svc["metadata"]["name"]
        external = (spec.get("type", "ClusterIP") in ("NodePort", "LoadBalancer", "ExternalName")
                    or spec.get("externalIPs"))
        selected = [t for _, t in templates if spec.get("selector") and
                    selector_matches({"matchLabels": spec["selector"]}, t["metadata"]["labels"])]
        for p in spec.get("ports", []):
            target = p.get("targetPort", p["port"])
            reaches = {p["port"]} if not selected else {resolve_port(target, t) for t in selected}
            if external and INTERNAL_PORT in reaches:
                problems.append(f"Service {name} ({spec.get('type')}) exposes {INTERNAL_PORT}")
    for workload, t in templates:
        if t["spec"].get("hostNetwork"):
            problems.append(f"{workload['metadata']['name']} uses the host network")
        for c in containers(t):
            for p in c.get("ports", []):
                if p.get("hostPort"):
                    problems.append(f"{c['name']} binds hostPort {p['hostPort']}")
    for ing in of_kind(docs, "Ingress"):
        problems.append(f"Ingress {ing['metadata']['name']}: review it against {INTERNAL_PORT}")
    return problems


def compose_ports(svc):
    """[(published or None, set of container ports)] from the long form docker-compose renders
    for most mappings, or the short "[IP:]HOST:CONTAINER[/proto]" strings it keeps for some
    (those with a host IP), including port ranges."""
    def span(text):
        a, _, b = str(text).partition("-")
        return set(range(int(a), int(b or a) + 1))
    out = []
    for p in svc.get("ports", []):
        if isinstance(p, dict):
            out.append((p.get("published"), span(p["target"])))
        else:
            parts = str(p).split("/")[0].rsplit(":", 2)
            out.append((parts[-2] if len(parts) > 1 else None, span(parts[-1])))
    return out


def compose_internal_exposure(config):
    """Published ports of the rendered compose file that lead to remote-proxy's internal port."""
    proxy = config["services"]["remote-proxy"]
    listen = proxy["environment"]["EDGEGATE_INTERNAL_LISTEN"]
    internal = int(listen.rsplit(":", 1)[1])
    problems = []
    for name, svc in config["services"].items():
        if svc.get("network_mode") == "host":
            problems.append(f"{name} uses the host network")
        for published, targets in compose_ports(svc):
            if internal in targets and name == "remote-proxy":
                problems.append(f"remote-proxy publishes its internal port {internal} (host side {published})")
    return problems


# ---------------------------------------------------------------- compose

def test_compose_config_accepted_with_every_service_wired():
    with tempfile.TemporaryDirectory() as tmp:
        rc, config, err = compose_config(COMPOSE, filled_env_file(tmp))
    eq(rc, 0, f"docker-compose config exit status ({err.strip()})")
    services = config["services"]
    eq(set(services), {"postgres", "redis", "migrate", "api-server", "remote-proxy",
                       "demo-target", "demo-agent"}, "compose services")
    for name in ("postgres", "redis"):
        check(services[name].get("volumes"), f"{name} keeps no volume")
        check(services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck")
    eq(services["migrate"]["command"], ["api-server", "migrate"], "migrate command")
    eq(services["migrate"]["depends_on"], {"postgres": {"condition": "service_healthy"}},
       "migrate waits for")
    eq(services["api-server"]["depends_on"],
       {"migrate": {"condition": "service_completed_successfully"},
        "redis": {"condition": "service_healthy"}}, "api-server waits for")
    eq(services["remote-proxy"]["depends_on"], {"redis": {"condition": "service_healthy"}},
       "remote-proxy waits for")
    for name in ("api-server", "remote-proxy"):
        svc = services[name]
        eq(svc["healthcheck"]["test"], ["CMD", "edgegate-healthcheck", name], f"{name} healthcheck")
        # SIGTERM, up to 10 s of drain: the grace period must leave room for it.
        m = re.fullmatch(r"(\d+)s", str(svc["stop_grace_period"]))
        check(m and int(m.group(1)) >= 15, f"{name} stop_grace_period {svc['stop_grace_period']}")
    for name in ("migrate", "api-server", "remote-proxy", "demo-agent"):
        svc = services[name]
        check(svc.get("read_only") is True, f"{name}: root file system not read-only")
        eq(svc.get("cap_drop"), ["ALL"], f"{name} cap_drop")
        check("no-new-privileges:true" in svc.get("security_opt", []), f"{name}: no no-new-privileges")
    for name in ("demo-target", "demo-agent"):
        eq(services[name].get("profiles"), ["demo"], f"{name} profiles")


def test_compose_refuses_to_start_with_the_unfilled_template():
    env = env_file_values(ENV_EXAMPLE)
    for var in SECRET_VARS:
        eq(env.get(var), "", f"{var} in .env.example (the template must hold no secret)")
    rc, _, err = compose_config(COMPOSE, ENV_EXAMPLE)
    check(rc != 0, "docker-compose accepted .env.example with empty secrets")
    check(re.search(r"set \w+ in deploy/\.env", err), f"the refusal does not say what to set:\n{err}")


def test_compose_never_publishes_the_internal_port():
    with tempfile.TemporaryDirectory() as tmp:
        env_file = filled_env_file(tmp)
        _, config, _ = compose_config(COMPOSE, env_file)
        eq(compose_internal_exposure(config), [], "compose exposure of 3801")
        published = {name: [(h if h is None else int(h), sorted(t)) for h, t in compose_ports(svc)]
                     for name, svc in config["services"].items() if svc.get("ports")}
        eq(published, {"api-server": [(API_PORT, [API_PORT])], "remote-proxy": [(TUNNEL_PORT, [TUNNEL_PORT])]},
           "published ports")
        eq(config["services"]["api-server"]["environment"]["EDGEGATE_INTERNAL_URL"],
           f"http://remote-proxy:{INTERNAL_PORT}", "api-server's way to the internal API")
        with open(COMPOSE) as f:
            text = f.read()
        # Negative control: copies with 3801 published in each syntax compose accepts.
        mapping = f'      - "{TUNNEL_PORT}:{TUNNEL_PORT}"\n'
        check(mapping in text, "negative control: could not find the tunnel port mapping")
        os.mkdir(os.path.join(tmp, "deploy"))
        path = os.path.join(tmp, "deploy", "docker-compose.yml")
        for extra in (f'"{INTERNAL_PORT}"', f'"127.0.0.1:{INTERNAL_PORT}:{INTERNAL_PORT}"',
                      f'"{TUNNEL_PORT}-{INTERNAL_PORT}:{TUNNEL_PORT}-{INTERNAL_PORT}"'):
            with open(path, "w") as f:
                f.write(text.replace(mapping, f"{mapping}      - {extra}\n"))
            rc, bad_config, err = compose_config(path, env_file)
            eq(rc, 0, f"broken copy renders ({err})")
            check(compose_internal_exposure(bad_config), f"publishing 3801 as {extra} went unnoticed")


# ---------------------------------------------------------------- Kubernetes: schemas

def test_k8s_manifests_validate_against_the_kubernetes_api_schemas():
    results = validate_k8s(k8s_files())
    bad = [f"{os.path.basename(r['file'])} #{r['index']} {r['kind']}/{r['name']}: {r['errors']}"
           for r in results if not r["ok"]]
    eq(bad, [], "invalid manifests")
    kinds = sorted(r["kind"] for r in results)
    eq(kinds, sorted(["Namespace", "ConfigMap", "Secret", "Secret", "NetworkPolicy", "Job",
                      "Deployment", "Service", "Service", "PodDisruptionBudget",
                      "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]),
       "kinds of the manifests")
    docs = k8s_docs()
    ns = of_kind(docs, "Namespace")[0]["metadata"]["name"]
    for d in docs:
        if d["kind"] != "Namespace":
            eq(d["metadata"].get("namespace"), ns, f"namespace of {d['kind']}/{d['metadata']['name']}")


def test_k8s_validator_rejects_broken_manifests():
    """The negative control: each copy breaks the real api-server manifest in one way the API
    server would refuse; the validator must name the problem."""
    with open(os.path.join(K8S, "50-api-server.yaml")) as f:
        original = f.read()
    breakages = {
        "misspelt field": (("  replicas: 2\n", "  replica: 2\n"), 'unknown field "replica"'),
        "wrong type": (("containerPort: 3721", "containerPort: http"), "containerPort: must be integer"),
        "missing required field": (("        - name: api-server\n          image:",
                                    "        - image:"), "required property 'name'"),
        "value outside the enum": (("  type: ClusterIP", "  type: Clusterip"), "allowed values"),
        "beta API version no longer served": (("apiVersion: autoscaling/v2\n", "apiVersion: autoscaling/v2beta1\n"),
                                "not a stable (GA) API version"),
        "unknown field in securityContext": (("readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true"),
                                             'unknown field "readOnlyRootFileSystem"'),
    }
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for what, ((old, new), _) in breakages.items():
            check(old in original, f"negative control {what!r}: {old!r} not in the manifest")
            path = os.path.join(tmp, re.sub(r"\W+", "-", what) + ".yaml")
            with open(path, "w") as f:
                f.write(original.replace(old, new, 1))
            paths[path] = what
        control = os.path.join(tmp, "unchanged.yaml")
        with open(control, "w") as f:
            f.write(original)
        results = validate_k8s([control, *paths])
    for r in results:
        if r["file"] == control:
            check(r["ok"], f"the unchanged copy fails: {r['errors']}")
    for path, what in paths.items():
        errors = [e for r in results if r["file"] == path for e in r["errors"]]
        expected = breakages[what][1]
        check(any(expected in e for e in errors),
              f"{what}: expected an error containing {expected!r}, got {errors}")


# ---------------------------------------------------------------- Kubernetes: 3801 stays inside

def test_networkpolicy_admits_3801_only_from_api_server_and_ops_namespaces():
    docs = k8s_docs()
    eq(internal_port_violations(docs), [], "NetworkPolicy problems")
    # Negative controls: plausible mistakes the evaluation must catch.
    mutants = {}
    m = copy.deepcopy(docs)
    for p in of_kind(m, "NetworkPolicy"):
        for rule in p["spec"]["ingress"]:
            rule.pop("from", None)
    mutants["3801 rule without `from`"] = m
    m = copy.deepcopy(docs)
    for p in of_kind(m, "NetworkPolicy"):
        for rule in p["spec"]["ingress"]:
            for peer in rule.get("from", []):
                if "namespaceSelector" in peer:
                    peer["namespaceSelector"] = {}
    mutants["ops peer with an empty namespaceSelector"] = m
    m = copy.deepcopy(docs)
    for p in of_kind(m, "NetworkPolicy"):
        p["spec"]["ingress"].append({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                                     "ports": [{"port": "internal"}]})
    mutants["an extra rule opening the named port to 0.0.0.0/0"] = m
    m = copy.deepcopy(docs)
    for p in of_kind(m, "NetworkPolicy"):
        p["spec"]["podSelector"] = {"matchLabels": {"app.kubernetes.io/name": "remote-prox"}}
    mutants["a podSelector that misses the pods"] = m
    for what, mutant in mutants.items():
        check(internal_port_violations(mutant), f"negative control not caught: {what}")


def test_no_service_exposes_3801_outside_the_cluster():
    docs = k8s_docs()
    eq(internal_exposure_violations(docs), [], "exposure of 3801")
    internal = named(docs, "Service", "remote-proxy-internal")
    eq(internal["spec"].get("type", "ClusterIP"), "ClusterIP", "internal Service type")
    proxy = named(docs, "Deployment", "remote-proxy")["spec"]["template"]
    check(selector_matches({"matchLabels": internal["spec"]["selector"]}, proxy["metadata"]["labels"]),
          "remote-proxy-internal selects no remote-proxy pod")
    eq([resolve_port(p["targetPort"], proxy) for p in internal["spec"]["ports"]], [INTERNAL_PORT],
       "remote-proxy-internal target")
    tunnel = named(docs, "Service", "remote-proxy-tunnel")
    eq(tunnel["spec"]["type"], "LoadBalancer", "tunnel Service type")
    eq([(p["port"], resolve_port(p["targetPort"], proxy)) for p in tunnel["spec"]["ports"]],
       [(TUNNEL_PORT, TUNNEL_PORT)], "tunnel Service ports")
    check(any("idle-timeout" in k for k in tunnel["metadata"].get("annotations", {})),
          "the tunnel load balancer carries no idle-timeout annotation")
    # Negative controls.
    m = copy.deepcopy(docs)
    named(m, "Service", "remote-proxy-internal")["spec"]["type"] = "LoadBalancer"
    check(internal_exposure_violations(m), "a LoadBalancer on 3801 went unnoticed")
    m = copy.deepcopy(docs)
    named(m, "Service", "remote-proxy-tunnel")["spec"]["ports"].append(
        {"name": "oops", "port": 8080, "targetPort": "internal"})
    check(internal_exposure_violations(m), "a named target port 'internal' on the LoadBalancer went unnoticed")
    m = copy.deepcopy(docs)
    named(m, "Deployment", "remote-proxy")["spec"]["template"]["spec"]["containers"][0]["ports"][1]["hostPort"] = 3801
    check(internal_exposure_violations(m), "a hostPort went unnoticed")


# ---------------------------------------------------------------- Kubernetes: pods

def test_every_container_runs_restricted():
    docs = k8s_docs()
    templates = pod_templates(docs)
    eq(sorted(w["metadata"]["name"] for w, _ in templates),
       ["api-server", "edgegate-migrate", "remote-proxy"], "workloads")
    for workload, t in templates:
        name = workload["metadata"]["name"]
        pod_sc = t["spec"].get("securityContext", {})
        eq(pod_sc.get("seccompProfile", {}).get("type"), "RuntimeDefault", f"{name} seccomp")
        eq(t["spec"].get("automountServiceAccountToken"), False, f"{name} automountServiceAccountToken")
        for c in containers(t):
            sc = c.get("securityContext", {})
            what = f"{name}/{c['name']}"
            check(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{what}: runAsNonRoot")
            eq(sc.get("runAsUser", pod_sc.get("runAsUser")), IMAGE_UID, f"{what}: runAsUser (the image's USER)")
            eq(sc.get("readOnlyRootFilesystem"), True, f"{what}: readOnlyRootFilesystem")
            eq(sc.get("allowPrivilegeEscalation"), False, f"{what}: allowPrivilegeEscalation")
            eq(sc.get("capabilities", {}).get("drop"), ["ALL"], f"{what}: capabilities.drop")
            check(not sc.get("capabilities", {}).get("add"), f"{what}: adds capabilities")
            check(not sc.get("privileged"), f"{what}: privileged")
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    check(r in res.get(kind, {}), f"{what}: no {kind}.{r}")


def test_probes_shutdown_and_scaling():
    docs = k8s_docs()
    ports = {"api-server": API_PORT, "remote-proxy": INTERNAL_PORT}
    for name, port in ports.items():
        dep = named(docs, "Deployment", name)
        t = dep["spec"]["template"]
        check(selector_matches(dep["spec"]["selector"], t["metadata"]["labels"]),
              f"{name}: selector does not match its pods")
        check(dep["spec"]["replicas"] >= 2, f"{name}: fewer than 2 replicas")
        c = t["spec"]["containers"][0]
        eq(c["command"], [name], f"{name} command")
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = c.get(probe, {}).get("httpGet", {})
            eq(get.get("path"), path, f"{name} {probe} path")
            eq(resolve_port(get.get("port"), t), port, f"{name} {probe} port")
        pre = c["lifecycle"]["preStop"]["exec"]["command"]
        eq(pre[0], "sleep", f"{name} preStop")
        # The daemon drains for up to 10 s after SIGTERM, which comes after preStop.
        grace = t["spec"]["terminationGracePeriodSeconds"]
        check(grace >= int(pre[1]) + 10 + 5, f"{name}: terminationGracePeriodSeconds {grace} too short")
        pdbs = [p for p in of_kind(docs, "PodDisruptionBudget")
                if selector_matches(p["spec"]["selector"], t["metadata"]["labels"])]
        eq(len(pdbs), 1, f"PodDisruptionBudgets of {name}")
    hpa = named(docs, "HorizontalPodAutoscaler", "api-server")
    eq(hpa["spec"]["scaleTargetRef"], {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api-server"},
       "autoscaler target")
    check(hpa["spec"]["minReplicas"] >= 2, "autoscaler may go below 2 replicas")
    job = of_kind(docs, "Job")[0]["spec"]["template"]["spec"]["containers"][0]
    eq(job["command"], ["api-server", "migrate"], "migration Job command")
    # Each replica must advertise its own address in tunnel:route:*, not the shared Service.
    proxy = named(docs, "Deployment", "remote-proxy")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in proxy.get("env", [])}
    eq(env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP", "POD_IP source")
    eq(env["EDGEGATE_INTERNAL_URL"]["value"], f"http://$(POD_IP):{INTERNAL_PORT}", "advertised route")


# ---------------------------------------------------------------- variable names

def k8s_provided(docs, template):
    """EDGEGATE_* variables a pod's first container receives (envFrom sources and env)."""
    c = template["spec"]["containers"][0]
    got = set()
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            got |= set(named(docs, "ConfigMap", src["configMapRef"]["name"]).get("data", {}))
        if "secretRef" in src:
            s = named(docs, "Secret", src["secretRef"]["name"])
            got |= set(s.get("stringData", {})) | set(s.get("data", {}))
    got |= {e["name"] for e in c.get("env", [])}
    return {v for v in got if v.startswith("EDGEGATE_")}


def compare_with_help(what, names, read, problems):
    extra, missing = names - read, read - names
    not_yet = extra & OIDC_VARS
    line = f"  {what}: {len(names & read)} of the {len(read)} variables the daemons read"
    if not_yet:
        line += f"; {len(not_yet)} declared for the OIDC issue, not yet read by the daemons"
    print(line, flush=True)
    if extra - OIDC_VARS:
        problems.append(f"{what} has variables the daemons do not read: {sorted(extra - OIDC_VARS)}")
    if missing:
        problems.append(f"{what} lacks: {sorted(missing)}")


def test_environment_variables_are_the_same_set_everywhere():
    api, proxy = help_vars("api-server"), help_vars("remote-proxy")
    read = api | proxy
    docs = k8s_docs()
    with open(COMPOSE) as f:
        compose = yaml.safe_load(f)
    compose_env = {name: {k for k in (svc.get("environment") or {}) if k.startswith("EDGEGATE_")}
                   for name, svc in compose["services"].items()}
    k8s_names = set()
    for kind in ("ConfigMap", "Secret"):
        for d in of_kind(docs, kind):
            k8s_names |= set(d.get("data", {})) | set(d.get("stringData", {}))
    for _, t in pod_templates(docs):
        for c in containers(t):
            k8s_names |= {e["name"] for e in c.get("env", [])}
    sources = {
        "docker-compose.yml": set().union(*compose_env.values()),
        "k8s ConfigMap + Secrets": {v for v in k8s_names if v.startswith("EDGEGATE_")},
        ".env.example": {v for v in env_file_values(ENV_EXAMPLE) if v.startswith("EDGEGATE_")},
        "README configuration table": readme_config_vars(),
    }
    print(f"  --help of api-server and remote-proxy: {len(read)} variables", flush=True)
    problems = []
    for what, names in sources.items():
        compare_with_help(what, names, read, problems)
    declared = set().union(*sources.values()) & OIDC_VARS - read
    if declared:
        print(f"  declared for the OIDC issue, not yet read by the daemons: {' '.join(sorted(declared))}",
              flush=True)
    # Each daemon gets everything it reads, wherever it runs; remote-proxy no api-only secret.
    for daemon, wanted in (("api-server", api), ("remote-proxy", proxy)):
        t = named(docs, "Deployment", daemon)["spec"]["template"]
        for where, got in ((f"k8s {daemon}", k8s_provided(docs, t)), (f"compose {daemon}", compose_env[daemon])):
            if wanted - got:
                problems.append(f"{where} does not receive {sorted(wanted - got)}")
            if daemon == "remote-proxy" and got & API_ONLY_SECRETS:
                problems.append(f"{where} receives api-server's secrets {sorted(got & API_ONLY_SECRETS)}")
    eq(problems, [], "variable sets")


# ---------------------------------------------------------------- image

def dockerfile_stages():
    """[(FROM line, [(INSTRUCTION, arguments)])] with continuation lines joined."""
    with open(os.path.join(DEPLOY, "Dockerfile")) as f:
        text = f.read()
    logical, cur = [], ""
    for line in text.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        logical.append(cur + line)
        cur = ""
    stages = []
    for ins in logical:
        word, _, args = ins.strip().partition(" ")
        word = word.upper()
        if word == "FROM":
            stages.append((args.strip(), []))
        else:
            check(stages, f"Dockerfile: {word} before FROM")
            stages[-1][1].append((word, " ".join(args.split())))
    return stages


def apt_installed(instructions):
    pkgs = []
    for word, args in instructions:
        if word == "RUN":
            for m in re.finditer(r"apt-get install ([^&;|]*)", args):
                pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def test_dockerfile_multi_stage_non_root_healthcheck_no_secrets():
    stages = dockerfile_stages()
    check(len(stages) >= 2, "the Dockerfile is not multi-stage")
    build_from, build = stages[0]
    check(re.fullmatch(r"debian:bookworm\S* (?i:as) build", build_from), f"build stage: FROM {build_from}")
    runs = " ".join(a for w, a in build if w == "RUN")
    check("deploy/deps.sh" in runs and "make" in runs, "the build stage does not run deploy/deps.sh and make")
    final_from, final = stages[-1]
    check(final_from.startswith("debian:bookworm"), f"runtime stage: FROM {final_from}")
    copies = [a for w, a in final if w == "COPY"]
    for b in ("api-server", "remote-proxy", "edge-agent"):
        check(any(a.startswith("--from=build") and f"/bin/{b}" in a for a in copies), f"{b} not copied")
    check(any(re.fullmatch(r"sql/? /usr/share/edgegate/sql/?", a) for a in copies), "sql/ not installed")
    check(any(a == "deploy/healthcheck.sh /usr/local/bin/edgegate-healthcheck" for a in copies),
          "the healthcheck probe is not installed")
    users = [a for w, a in final if w == "USER"]
    check(users, "no USER in the runtime stage")
    uid = users[-1].split(":")[0]
    check(uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: not a numeric non-root uid")
    eq(int(uid), IMAGE_UID, "image uid (the manifests' runAsUser)")
    checks = [a for w, a in final if w == "HEALTHCHECK"]
    check(checks and "edgegate-healthcheck" in checks[-1], "no HEALTHCHECK running edgegate-healthcheck")
    exposed = {int(p.split("/")[0]) for w, a in final if w == "EXPOSE" for p in a.split()}
    check(INTERNAL_PORT not in exposed, "EXPOSE 3801: `docker run -P` would publish the internal API")
    for _, instructions in stages:
        for w, a in instructions:
            if w in ("ENV", "ARG"):
                check(not re.search(r"TOKEN|SECRET|PASSW|KEY|CREDENTIAL|EDGEGATE_", a, re.I),
                      f"{w} {a}: configuration and secrets belong to run time")
            if w in ("COPY", "ADD") and not a.startswith("--from"):
                srcs = a.split()[:-1]
                check(not any(s in (".", "./") or ".env" in s or ".run" in s for s in srcs),
                      f"{w} {a}: copies the whole context or local secrets")
    runtime = apt_installed(final)
    check(runtime, "the runtime stage installs no package")
    check(not [p for p in runtime if p.endswith("-dev") or p in ("build-essential", "gcc", "make")],
          f"build tools in the runtime stage: {runtime}")


def packages_owning(filenames):
    """{file name: Debian package} for files of installed packages, by base name."""
    r = subprocess.run(["dpkg", "-S", *[f"*/{n}" for n in sorted(filenames)]], capture_output=True,
                       text=True)
    owners = {}
    for line in r.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        name = os.path.basename(path)
        if name in filenames and not pkg.split(":")[0].endswith("-dev"):
            owners[name] = pkg.split(":")[0]
    eq(sorted(set(filenames) - set(owners)), [], "files no installed package provides")
    return owners


def test_runtime_stage_installs_exactly_the_libraries_the_binaries_link():
    """The runtime stage's packages (besides ca-certificates) are exactly those of the shared
    libraries the Makefile links the three binaries against, and they include every DT_NEEDED
    entry of the binaries built here. Each name being installed on this bookworm machine also
    proves it is a real package name."""
    # glibc is in every Debian image; sanitizer runtimes appear only in `make SAN=1` builds.
    glibc = {"c", "m", "pthread", "dl", "rt"}
    base = re.compile(r"^(libc|libm|libpthread|libdl|librt|ld-linux.*|libasan|libubsan|liblsan|libtsan)\.so")
    targets = ["bin/api-server", "bin/remote-proxy"]
    if glob.glob(os.path.join(ROOT, "test", "edge-agent", "*.c")):
        targets.append("bin/edge-agent")
    # What the link commands name (-lNAME), without running them.
    # Without the MAKEFLAGS of the `make test` around us (its jobserver, SAN=...).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(["make", "--no-print-directory", "-n", "-B", *targets], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60).stdout
    links = [line for line in out.splitlines() if re.search(r" -o bin/\S+ ", line)]
    eq(len(links), len(targets), "link commands found by make -n")
    libs = set()
    for line in links:
        for name in set(re.findall(r"(?:^|\s)-l(\S+)", line)) - glibc:
            dev_link = subprocess.run(["cc", f"-print-file-name=lib{name}.so"], capture_output=True,
                                      text=True, check=True).stdout.strip()
            check(os.path.isabs(dev_link), f"-l{name}: lib{name}.so not found")
            libs.add(os.path.basename(os.path.realpath(dev_link)))
    linked = set(packages_owning(libs).values())
    runtime = set(apt_installed(dockerfile_stages()[-1][1])) - {"ca-certificates"}
    print(f"  linked: {' '.join(sorted(linked))}", flush=True)
    eq(sorted(linked - runtime), [], "packages the runtime stage lacks")
    eq(sorted(runtime - linked), [], "packages the runtime stage installs for nothing")
    # The binaries as built: every library they load is in the runtime stage.
    sonames = set()
    for t in targets:
        path = os.path.join(BIN, os.path.basename(t))
        check(os.path.exists(path), f"{path} missing: run make")
        dyn = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
        sonames |= {x for x in re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dyn) if not base.match(x)}
    eq(sorted(set(packages_owning(sonames).values()) - runtime), [],
       "packages the built binaries load but the runtime stage lacks")
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\n", "ca-certificates", *sorted(runtime)],
                       capture_output=True, text=True)
    eq(r.returncode, 0, f"unknown package names: {r.stderr.strip()}")


def test_healthcheck_probe_follows_readiness():
    require_services()
    probe = os.path.join(DEPLOY, "healthcheck.sh")

    def run(*args, env=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("EDGEGATE_")}
        e.update(env or {})
        return subprocess.run(["bash", probe, *args], env=e, capture_output=True, text=True, timeout=15)

    with RemoteProxy() as rp:
        listen = {"EDGEGATE_INTERNAL_LISTEN": f"127.0.0.1:{rp.internal_port}"}
        r = run("remote-proxy", env=listen)
        eq(r.returncode, 0, f"probe of a ready remote-proxy ({r.stderr.strip()})")
        # Nothing on the api-server port: the probe without a daemon name falls through to 3801.
        r = run(env={"EDGEGATE_API_LISTEN": "127.0.0.1:1", **listen})
        eq(r.returncode, 0, f"probe without a daemon name ({r.stderr.strip()})")
        r = run("remote-proxy", "/no-such-path", env=listen)
        check(r.returncode != 0 and " 404 " in r.stderr, f"a 404 counted as healthy: {r.stderr!r}")
    r = run("remote-proxy", env=listen)
    check(r.returncode != 0 and "nothing listens" in r.stderr, f"a stopped daemon counted as healthy: {r.stderr!r}")
    r = run("api-server", env={"EDGEGATE_API_LISTEN": "0.0.0.0:1"})
    check(r.returncode != 0, "a closed api-server port counted as healthy")


def test_readme_deploy_section_covers_compose_kubernetes_agents_and_ops():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    m = re.search(r"^## Deploy\n(.*?)^## ", text, re.M | re.S)
    check(m, "README has no Deploy section")
    section = m.group(1)
    for needle in ("docker compose", ".env.example", "deploy/k8s/", "LoadBalancer", "wss://",
                   "EDGEGATE_TLS_CERT", "port-forward", "/internal/sessions", "Authorization: Bearer",
                   "edgegate.io/ops=true", "idle", "3801"):
        check(needle in section, f"the Deploy section does not mention {needle!r}")
    with open(os.path.join(K8S, "20-networkpolicy.yaml")) as f:
        policy = yaml.safe_load(f)
    labels = [peer["namespaceSelector"]["matchLabels"] for rule in policy["spec"]["ingress"]
              for peer in rule.get("from", []) if "namespaceSelector" in peer]
    eq(labels, [OPS_LABEL], "the ops namespace label the README tells operators to set")
