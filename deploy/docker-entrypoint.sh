#!/bin/sh
# Entry point of the kernal image: store the tokens given to the container, then run the command
# (by default `kernal hub ...`, see the Dockerfile's CMD).
#
# Tokens: when $KERNAL_TOKENS_DIR names a directory, each regular file in it is one AI's token:
# the file name is the AI id, the content (trailing newline ignored) the token. A mounted
# Kubernetes Secret or a bind-mounted folder has that shape. Each is stored with
# `kernal token add` in $KERNAL_DB, which keeps only its hash; adding it again at every start is
# harmless. Deleting a file does not revoke its token: run `kernal token revoke AI_ID`.
set -eu

if [ -n "${KERNAL_TOKENS_DIR:-}" ]; then
    if [ ! -d "$KERNAL_TOKENS_DIR" ]; then
        echo "entrypoint: KERNAL_TOKENS_DIR=$KERNAL_TOKENS_DIR is not a directory: mount the tokens there or unset it" >&2
        exit 2
    fi
    for file in "$KERNAL_TOKENS_DIR"/*; do
        # Dot files (a Secret volume's ..data links) are not matched by *; skip folders.
        [ -f "$file" ] || continue
        ai_id=$(basename "$file")
        token=$(cat "$file")
        # Replicas starting together on a new database may race on the first insert: once more.
        kernal token add "$ai_id" --token "$token" >/dev/null 2>&1 \
            || { sleep 1; kernal token add "$ai_id" --token "$token" >/dev/null; }
        echo "entrypoint: stored the token of $ai_id" >&2
    done
fi

exec "$@"
