"""Everyday calls of dohq-artifactory (PyPI), the most used Python client
for Artifactory, against a Waybill hub. Run by tests/it/clients.rs, which
installs the library into a virtual environment and starts the hub.

Usage: python dohq_everyday.py <hub base URL> <admin password>
Exits non-zero, with a traceback, on the first call that misbehaves.
"""

import hashlib
import os
import sys
import tempfile

import requests
from artifactory import ArtifactoryPath
from dohq_artifactory import RepositoryLocal, Token
from dohq_artifactory.exception import ArtifactoryException

base, password = sys.argv[1], sys.argv[2]
auth = ("admin", password)
art = ArtifactoryPath(f"{base}/artifactory", auth=auth)


def path(rel, **credentials):
    credentials = credentials or {"auth": auth}
    return ArtifactoryPath(f"{base}/artifactory/{rel}", **credentials)


def check(label, got, want):
    if got != want:
        raise AssertionError(f"{label}: got {got!r}, want {want!r}")
    print(f"ok: {label}")


# Repositories: created with the library's full configuration body, then read back.
RepositoryLocal(art, "py-libs", package_type=RepositoryLocal.GENERIC).create()
repo = art.find_repository_local("py-libs")
check("repository found", repo is not None and repo.name, "py-libs")

# Deploy with checksums (deploy_file sends all three) and properties.
content = b"hello from dohq-artifactory\n" * 100
with tempfile.TemporaryDirectory() as tmp:
    local = os.path.join(tmp, "hello.txt")
    with open(local, "wb") as f:
        f.write(content)
    target = path("py-libs/dir/hello.txt")
    target.deploy_file(local, parameters={"team": "core", "tags": ["a", "b"]})

check("exists", target.exists(), True)
check("a missing file does not exist", path("py-libs/dir/none.txt").exists(), False)
st = target.stat()
check("stat size", st.size, len(content))
check("stat sha256", st.sha256, hashlib.sha256(content).hexdigest())
check("stat sha1", st.sha1, hashlib.sha1(content).hexdigest())
check("stat md5", st.md5, hashlib.md5(content).hexdigest())
check("is_file", target.is_file(), True)
check("parent is_dir", target.parent.is_dir(), True)

# Download, whole and streamed.
check("read_bytes", target.read_bytes(), content)
with target.open() as fd:
    check("open/read", fd.read(), content)

# Properties: read, set (PATCH api/metadata), delete.
props = target.properties
check("properties read", {k: sorted(v) for k, v in props.items()}, {"team": ["core"], "tags": ["a", "b"]})
target.properties = {"team": "infra", "stage": ["qa", "prod"]}
props = target.properties
check("properties replaced", {k: sorted(v) for k, v in props.items()}, {"team": ["infra"], "stage": ["prod", "qa"]})
target.set_properties({"owner": "ops"})
target.del_properties(["stage"])
check("properties edited", sorted(target.properties), ["owner", "team"])

# Folders: mkdir, listing, touch.
folder = path("py-libs/newdir")
folder.mkdir()
check("mkdir", folder.is_dir(), True)
touched = path("py-libs/newdir/empty.bin")
touched.touch()
check("touch", touched.stat().size, 0)
check("listing", sorted(p.name for p in path("py-libs/dir").iterdir()), ["hello.txt"])
check("glob", sorted(p.name for p in path("py-libs").glob("**/*.txt")), ["hello.txt"])

# Deploy by checksum: no bytes sent, the hub already holds them.
copy = path("py-libs/copies/hello.txt")
copy.deploy_by_checksum(sha256=hashlib.sha256(content).hexdigest())
check("deploy_by_checksum", copy.read_bytes(), content)

# AQL: files only, unless the query asks for folders.
found = art.aql("items.find", {"repo": "py-libs"})
check("aql files", sorted(f"{r['path']}/{r['name']}" for r in found),
      ["copies/hello.txt", "dir/hello.txt", "newdir/empty.bin"])
found = art.aql("items.find", {"repo": "py-libs", "type": "folder"})
check("aql folders", sorted(r["name"] for r in found), ["copies", "dir", "newdir"])
found = art.aql("items.find", {"repo": "py-libs", "name": {"$match": "*.txt"}},
                ".include", ["name", "sha256", "property"])
check("aql include", sorted(r["sha256"] for r in found), [hashlib.sha256(content).hexdigest()] * 2)

# The three kinds of credential.
r = requests.post(f"{base}/artifactory/api/security/apiKey", auth=auth)
r.raise_for_status()
key = r.json()["apiKey"]
check("api key", path("py-libs/dir/hello.txt", apikey=key).read_bytes(), content)
token = Token(art, username="admin", scope="applied-permissions/admin", expires_in=3600)
token.create()
check("access token", path("py-libs/dir/hello.txt", token=token.jwt_token).read_bytes(), content)
try:
    path("py-libs/dir/hello.txt", apikey="AKCp" + "x" * 69).read_bytes()
    raise AssertionError("a wrong API key was accepted")
except (ArtifactoryException, requests.HTTPError) as e:
    print(f"ok: a wrong API key is refused ({type(e).__name__})")

# Delete.
copy.unlink()
check("unlink", copy.exists(), False)
try:
    path("py-libs/gone.txt").unlink()
    raise AssertionError("deleting a missing file succeeded")
except (FileNotFoundError, ArtifactoryException, requests.HTTPError) as e:
    print(f"ok: deleting a missing file fails ({type(e).__name__})")
path("py-libs/gone.txt").unlink(missing_ok=True)
print("ok: unlink(missing_ok=True)")
print("all dohq-artifactory calls behaved")
