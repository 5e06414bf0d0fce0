# lme4's profile intervals of an unstructured GLMM, confint(method = "profile", oldNames = FALSE),
# for tests/test_profile_glmm.py (the structured GLMM cases come from glmmTMB, structures.R).
# Run from the repo root:  Rscript tests/oracle/profile_glmm.R  (writes tests/reference/profile_glmm.json.gz).
suppressMessages({library(lme4); library(jsonlite)})
cb <- read.csv(gzfile("src/mmfast/datasets/data/cbpp.csv.gz"))
cb$herd <- factor(cb$herd)
cb$period <- factor(cb$period)
out <- list()
for (agq in c(1, 10)) {
  gm <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, binomial, nAGQ = agq)
  ci <- suppressMessages(confint(gm, method = "profile", oldNames = FALSE))
  out[[paste0("cbpp_agq", agq)]] <- list(
    formula = "cbind(incidence, size - incidence) ~ factor(period) + (1 | herd)", n_agq = agq,
    deviance = deviance(gm), names = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
  cat("cbpp nAGQ", agq, "\n")
}
out[["_meta"]] <- list(script = "tests/oracle/profile_glmm.R", lme4 = as.character(packageVersion("lme4")),
                       R = R.version.string)
con <- gzfile("tests/reference/profile_glmm.json.gz", "w")
writeLines(toJSON(out, digits = 15, auto_unbox = TRUE, na = "null", null = "null"), con)
close(con)
cat("written tests/reference/profile_glmm.json.gz\n")
