"""Typed search attributes, so the Temporal UI lists workflows by user, repo, branch and status.

Registered on the embedded dev server at start and on an external server by the worker.
"""

from temporalio.common import SearchAttributeKey

OWNER_ID = SearchAttributeKey.for_keyword("OwnerId")
REPO_ID = SearchAttributeKey.for_keyword("RepoId")
BRANCH_ID = SearchAttributeKey.for_keyword("BranchId")
BRANCH_STATUS = SearchAttributeKey.for_keyword("BranchStatus")
WORKFLOW_KIND = SearchAttributeKey.for_keyword("WorkflowKind")
LOOP_STATUS = SearchAttributeKey.for_keyword("LoopStatus")

ALL_KEYS = (OWNER_ID, REPO_ID, BRANCH_ID, BRANCH_STATUS, WORKFLOW_KIND, LOOP_STATUS)

# name -> indexed value type, as the `temporal server start-dev --search-attribute` flag wants it.
DEV_SERVER_FLAGS: dict[str, str] = {key.name: "Keyword" for key in ALL_KEYS}
