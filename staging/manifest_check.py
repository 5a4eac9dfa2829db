import json, os, sys
bad = []
for root in sys.argv[1:]:
    path = os.path.join(root, '.manifest.json')
    try:
        manifest = json.load(open(path))
    except (OSError, ValueError) as error:
        bad.append(f"{root}: no staging manifest ({path}: {error}); the model is not staged, or staging has "
                   "not finished: check the staging Job (kubectl get jobs) or run `python -m staging`")
        continue
    for entry in manifest.get("files", []):
        file = os.path.join(root, entry["path"])
        size = os.path.getsize(file) if os.path.exists(file) else None
        if size != entry["size"]:
            bad.append(f"{root}: {entry['path']} has size {size}, the manifest says {entry['size']}")
    print(f"weights ok: {root}: {len(manifest.get('files', []))} files, revision {manifest.get('revision')}",
          flush=True)
if bad:
    print("refusing to start the model server:\n  " + "\n  ".join(bad), file=sys.stderr, flush=True)
    sys.exit(1)
