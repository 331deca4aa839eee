"""First-time setup of Nydus on a containerd node: survey, answers, plan, apply.

`survey` reads what the node has (read-only), `answers` turns the operator's
answers and the survey into settings with an explanation each, `plan` lists
every file to write and command to run, `apply` runs the plan through the
action gate and records progress so an interrupted run continues, and
`verify` checks the result. The setup command and the screen use these.
"""
