//! The Pod fields podshim implements: the one list the "not supported yet" gate (`unsupported`)
//! allows, to grow as features land. Every other field of the Kubernetes API (`api-fields.txt`)
//! is refused as not supported yet, so a field a new Kubernetes release adds is refused until
//! someone implements it and lists it here.
//!
//! Entries name leaf fields (scalars, lists of scalars, maps), checked against the API's field
//! list by `schema_check`; `[]` stands for any list index and `{a,b}` for alternatives (nested
//! braces are fine), so `x.{a,b[].{c,d}}` is `x.a`, `x.b[].c`, `x.b[].d`.

use std::sync::OnceLock;

/// Fields podshim implements, before expansion.
const SUPPORTED: &[&str] = &[
    "apiVersion",
    "kind",
    // Accepted (e.g. from `kubectl get -o yaml`) and dropped whole.
    "status",
    "metadata.{name,namespace,labels,annotations,uid}",
    "spec.containers[].{name,image,command,args,workingDir,imagePullPolicy}",
    "spec.containers[].env[].{name,value}",
    // Resolved at plan time against the Pod and the manifest's ConfigMaps and Secrets (not
    // `fileKeyRef`); `resourceFieldRef` only for cpu and memory (checked in `check_values`).
    "spec.containers[].env[].valueFrom.fieldRef.{apiVersion,fieldPath}",
    "spec.containers[].env[].valueFrom.resourceFieldRef.{containerName,resource,divisor}",
    "spec.containers[].env[].valueFrom.{configMapKeyRef,secretKeyRef}.{name,key,optional}",
    "spec.containers[].envFrom[].{prefix,configMapRef.{name,optional},secretRef.{name,optional}}",
    // DNAT from the host port to the Pod (nftables), checked free before the Pod starts.
    "spec.containers[].ports[].{containerPort,name,protocol,hostPort,hostIP}",
    "spec.hostNetwork",
    // subPath and subPathExpr resolved inside the volume (`pod::subpath`); propagation and
    // recursive read-only as bind options.
    "spec.containers[].volumeMounts[].{name,mountPath,readOnly,subPath,subPathExpr,mountPropagation,recursiveReadOnly}",
    // The kubelet's type checks, `…OrCreate` made (`pod::host_path`).
    "spec.volumes[].hostPath.{path,type}",
    // Probes and hooks, run by the supervisor; httpGet only with scheme HTTP (checked in
    // `check_values`). Not the tcpSocket hook (deprecated), httpGet `protocol` or grpc `mode`.
    "spec.containers[].{livenessProbe,readinessProbe,startupProbe}.{initialDelaySeconds,timeoutSeconds,periodSeconds,successThreshold,failureThreshold,terminationGracePeriodSeconds}",
    "spec.containers[].{livenessProbe,readinessProbe,startupProbe}.{tcpSocket.{port,host},grpc.{port,service}}",
    "spec.containers[].{livenessProbe,readinessProbe,startupProbe,lifecycle.postStart,lifecycle.preStop}.{exec.command,httpGet.{path,port,host,scheme,httpHeaders[].{name,value}}}",
    "spec.containers[].lifecycle.{postStart,preStop}.sleep.seconds",
    // A host file bind-mounted there; read when the container exits.
    "spec.containers[].{terminationMessagePath,terminationMessagePolicy}",
    "spec.containers[].securityContext.{runAsUser,runAsGroup,runAsNonRoot,allowPrivilegeEscalation,readOnlyRootFilesystem}",
    "spec.containers[].securityContext.capabilities.{add,drop}",
    // containerd's meaning (`crate::security`, `crate::spec`): every capability and device, no
    // masking, no seccomp; `Unmasked` /proc; seccomp and AppArmor profiles (AppArmor refused as
    // the kubelet refuses it where the host has none).
    "spec.containers[].securityContext.{privileged,procMount}",
    "spec.containers[].securityContext.{seccompProfile,appArmorProfile}.{type,localhostProfile}",
    "spec.securityContext.{seccompProfile,appArmorProfile}.{type,localhostProfile}",
    // The kubelet's safe set, others behind PODSHIM_ALLOWED_UNSAFE_SYSCTLS.
    "spec.securityContext.sysctls[].{name,value}",
    // The host's PID or IPC namespace; one PID namespace with pause as PID 1.
    "spec.{hostPID,hostIPC,shareProcessNamespace}",
    // Only true, the default (false is refused in `check_values`).
    "spec.hostUsers",
    // Recorded and reported through `fieldRef` (no API server, no token).
    "spec.{serviceAccountName,serviceAccount}",
    // Only the names in CONTAINER_RESOURCES (checked in `check_values`).
    "spec.containers[].resources.{limits,requests}",
    // The Pod cgroup's limits (`pod::pod_level`), only cpu and memory (checked in
    // `check_values`); resize policies honoured by `podshim resize`.
    "spec.resources.{limits,requests}",
    "spec.containers[].resizePolicy[].{resourceName,restartPolicy}",
    // A pipe, or with `tty` a pseudo-terminal, whose other end the supervisor keeps, reached by
    // `podshim attach` (`supervise::attach`).
    "spec.containers[].{stdin,stdinOnce,tty}",
    "spec.volumes[].name",
    // A claim of the built-in local-path provisioner (`crate::storage`), bind-mounted.
    "spec.volumes[].persistentVolumeClaim.{claimName,readOnly}",
    "spec.volumes[].emptyDir.{medium,sizeLimit}",
    "spec.volumes[].{configMap.name,secret.secretName}",
    "spec.volumes[].{configMap,secret}.{defaultMode,optional,items[].{key,path,mode}}",
    // Files of Pod fields and container resources, and projections of several sources
    // (`resolve::volume`); not the service account token, trust bundles or Pod certificates.
    "spec.volumes[].downwardAPI.{defaultMode,items[].{path,mode,fieldRef.{apiVersion,fieldPath},resourceFieldRef.{containerName,resource,divisor}}}",
    "spec.volumes[].projected.{defaultMode,sources[].{secret,configMap}.{name,optional,items[].{key,path,mode}}}",
    "spec.volumes[].projected.sources[].downwardAPI.items[].{path,mode,fieldRef.{apiVersion,fieldPath},resourceFieldRef.{containerName,resource,divisor}}",
    // A JWT signed with the instance's own key (`crate::token`): no API server validates it.
    "spec.volumes[].projected.sources[].serviceAccountToken.{audience,expirationSeconds,path}",
    // An image of the store mounted read-only (`crate::pod::image_volume`).
    "spec.volumes[].image.{reference,pullPolicy}",
    "spec.{restartPolicy,terminationGracePeriodSeconds,hostname,subdomain,dnsPolicy}",
    // The kubelet's active deadline: the Pod fails with DeadlineExceeded and is stopped.
    "spec.activeDeadlineSeconds",
    "spec.dnsConfig.{nameservers,searches,options[].{name,value}}",
    "spec.hostAliases[].{ip,hostnames}",
    "spec.securityContext.{runAsUser,runAsGroup,runAsNonRoot,supplementalGroups}",
    // The volumes' group (setgid, group read-write) and an extra group of every container; the
    // volumes are new with the Pod, so both change policies mean the same.
    "spec.securityContext.{fsGroup,fsGroupChangePolicy}",
    // Merge (the image's /etc/group groups too) or Strict (only the Pod's).
    "spec.securityContext.supplementalGroupsPolicy",
    // Checked against this node's OS (the kubelet's admission).
    "spec.os.name",
    // Credentials for pulls, from `kubernetes.io/dockerconfigjson` Secrets of the same file.
    "spec.imagePullSecrets[].name",
    // Scheduling on this one node (`crate::schedule`), and priority as the Priority admission
    // plugin sets it.
    "spec.{nodeName,nodeSelector,priorityClassName,priority,preemptionPolicy}",
    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[].{matchExpressions,matchFields}[].{key,operator,values}",
    "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[].{weight,preference.{matchExpressions,matchFields}[].{key,operator,values}}",
    "spec.affinity.{podAffinity,podAntiAffinity}.{requiredDuringSchedulingIgnoredDuringExecution[],preferredDuringSchedulingIgnoredDuringExecution[].podAffinityTerm}.{topologyKey,namespaces,matchLabelKeys,mismatchLabelKeys,{labelSelector,namespaceSelector}.{matchLabels,matchExpressions[].{key,operator,values}}}",
    "spec.affinity.{podAffinity,podAntiAffinity}.preferredDuringSchedulingIgnoredDuringExecution[].weight",
    "spec.tolerations[].{key,operator,value,effect,tolerationSeconds}",
    "spec.topologySpreadConstraints[].{maxSkew,topologyKey,whenUnsatisfiable,minDomains,nodeAffinityPolicy,nodeTaintsPolicy,matchLabelKeys}",
    "spec.topologySpreadConstraints[].labelSelector.{matchLabels,matchExpressions[].{key,operator,values}}",
    "spec.schedulingGates[].name",
    // No-ops: accepted, with a warning (`NO_OPS`).
    "spec.{enableServiceLinks,automountServiceAccountToken,schedulerName}",
];

/// `SUPPORTED`, expanded.
pub(crate) fn supported() -> &'static [String] {
    static LIST: OnceLock<Vec<String>> = OnceLock::new();
    LIST.get_or_init(|| SUPPORTED.iter().flat_map(|e| expand(e)).collect())
}

/// Expands `{a,b}` alternatives (nested or several in a row).
fn expand(entry: &str) -> Vec<String> {
    let Some(open) = entry.find('{') else {
        return vec![entry.to_string()];
    };
    let mut depth = 0;
    let mut close = open;
    let mut cuts = vec![open];
    for (i, c) in entry.char_indices().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = i;
                    break;
                }
            }
            ',' if depth == 1 => cuts.push(i),
            _ => {}
        }
    }
    cuts.push(close);
    let (head, tail) = (&entry[..open], &entry[close + 1..]);
    cuts.windows(2)
        .flat_map(|w| expand(&format!("{head}{}{tail}", &entry[w[0] + 1..w[1]])))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn braces_expand() {
        assert_eq!(expand("a.b"), vec!["a.b"]);
        assert_eq!(expand("x.{a,b[].{c,d}}"), vec!["x.a", "x.b[].c", "x.b[].d"]);
        assert_eq!(expand("{a,b}.{c,d}"), vec!["a.c", "a.d", "b.c", "b.d"]);
        assert!(supported()
            .contains(&"spec.containers[].readinessProbe.httpGet.httpHeaders[].value".to_string()));
    }
}
