#!/bin/bash
# A private sshd on 127.0.0.1:2222 (does not touch /etc/ssh/sshd_config or port 22),
# with a generated client key for root. Everything lives in $D.
# Usage: bash ssh.sh ; then: ssh -F /var/lib/cparallel-sshd/ssh_config cpar-localhost 'echo hi'
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
D=${CPAR_SSHD_DIR:-/var/lib/cparallel-sshd}
PORT=${CPAR_SSHD_PORT:-2222}
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v scp >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
fi
mkdir -p "$D" /run/sshd; chmod 0700 "$D"; chmod 0755 /run/sshd
[ -f "$D/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$D/ssh_host_ed25519_key"
[ -f "$D/id_ed25519" ]           || ssh-keygen -q -t ed25519 -N '' -f "$D/id_ed25519" -C cparallel-test
cp "$D/id_ed25519.pub" "$D/authorized_keys"; chmod 0600 "$D/authorized_keys"
cat > "$D/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $PORT
HostKey $D/ssh_host_ed25519_key
PidFile $D/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile $D/authorized_keys
StrictModes yes
AcceptEnv IPP_* LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel INFO
CONF
cat > "$D/ssh_config" <<CONF
Host cpar-localhost 127.0.0.1 localhost
    HostName 127.0.0.1
    Port $PORT
    User root
    IdentityFile $D/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile /dev/null
    StrictHostKeyChecking no
    LogLevel ERROR
    BatchMode yes
CONF
/usr/sbin/sshd -t -f "$D/sshd_config"
if ! { [ -f "$D/sshd.pid" ] && kill -0 "$(cat "$D/sshd.pid")" 2>/dev/null; }; then
    /usr/sbin/sshd -f "$D/sshd_config" -E "$D/sshd.log"
fi
for i in $(seq 50); do ssh -F "$D/ssh_config" cpar-localhost true 2>/dev/null && break; sleep 0.2; done
ssh -F "$D/ssh_config" cpar-localhost 'echo "ssh ok: $(id -un)@$(hostname) pid $$"'
# plain-args form (what a launcher's ssh_args would hold):
ssh -p "$PORT" -i "$D/id_ed25519" -o IdentitiesOnly=yes -o UserKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=no -o LogLevel=ERROR -o BatchMode=yes root@127.0.0.1 -- 'echo args-form ok'
echo "sshd up on 127.0.0.1:$PORT (pid $(cat "$D/sshd.pid")); client config: $D/ssh_config"
