// Validate Flux objects (JSON array on stdin) against Flux's CRD schemas from
// @kubernetes-models/flux-cd; prints one line per problem and exits 1 if any.
import { OCIRepository } from "@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1";
import { HelmRelease } from "@kubernetes-models/flux-cd/helm.toolkit.fluxcd.io/v2";
import { Receiver } from "@kubernetes-models/flux-cd/notification.toolkit.fluxcd.io/v1";

const kinds = {
  "source.toolkit.fluxcd.io/v1 OCIRepository": OCIRepository,
  "helm.toolkit.fluxcd.io/v2 HelmRelease": HelmRelease,
  "notification.toolkit.fluxcd.io/v1 Receiver": Receiver,
};
let input = "";
for await (const chunk of process.stdin) input += chunk;
let failed = 0;
for (const doc of JSON.parse(input)) {
  const Model = kinds[`${doc.apiVersion} ${doc.kind}`];
  try {
    if (!Model) throw new Error(`no schema for ${doc.apiVersion} ${doc.kind}`);
    new Model(doc).validate();
    console.log(`ok ${doc.kind} ${doc.metadata?.name}`);
  } catch (e) {
    failed += 1;
    console.log(`invalid ${doc.kind} ${doc.metadata?.name}: ${e.message}`);
  }
}
process.exit(failed ? 1 : 0);
