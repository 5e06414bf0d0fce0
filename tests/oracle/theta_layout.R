# lme4's θ layout for tests/test_theta_layout.py: per formula, names(getME(m, "theta")), the
# lower bounds and start lme4 builds (reTrms$lower, reTrms$theta), and Λ (= t(Lambdat)) with
# θ = (1.5, 2.5, ...) scattered by lme4's Lind, as 0-based (i, j, x) triplets.  Run from the
# repo root:  Rscript tests/oracle/theta_layout.R   (writes tests/reference/theta_layout.json.gz)
# Factors are built with sorted levels (numbers numerically), as mmfast does.
suppressMessages({library(lme4); library(jsonlite)})
load_data <- function(name) read.csv(gzfile(file.path("src/mmfast/datasets/data", paste0(name, ".csv.gz"))))
as_fac <- function(x) factor(x, levels = sort(unique(x)))
facs <- function(...) { cols <- c(...); function(d) { for (c in cols) d[[c]] <- as_fac(d[[c]]); d } }
cases <- list(
  list(id = "slope", data = "sleepstudy", prep = facs("Subject"),
       formula = "Reaction ~ Days + (Days | Subject)"),
  list(id = "double_bar", data = "sleepstudy", prep = facs("Subject"),
       formula = "Reaction ~ Days + (Days || Subject)"),
  list(id = "no_intercept", data = "Orthodont", prep = facs("Subject", "Sex"),
       formula = "distance ~ age + (0 + age | Subject)"),
  list(id = "nested", data = "Pastes", prep = facs("batch", "cask"),
       formula = "strength ~ 1 + (1 | batch/cask)"),
  list(id = "crossed", data = "Penicillin", prep = facs("plate", "sample"),
       formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  list(id = "factor_slope", data = "Machines", prep = facs("Machine", "Worker"),
       formula = "score ~ Machine + (0 + Machine | Worker)"),
  list(id = "vector_and_crossed", data = "Orthodont", prep = facs("Subject", "Sex"),
       formula = "distance ~ age + (age | Subject) + (1 | Sex:age)"),
  list(id = "glmm_nested", data = "cbpp", prep = facs("herd", "period"),
       formula = "cbind(incidence, size - incidence) ~ period + (1 | herd/period)", glmm = TRUE)
)
out <- list()
for (cs in cases) {
  d <- cs$prep(load_data(cs$data))
  f <- as.formula(cs$formula)
  glmm <- isTRUE(cs$glmm)
  m <- suppressWarnings(suppressMessages(
    if (glmm) glmer(f, d, family = binomial) else
      lmer(f, d, control = lmerControl(check.nobs.vs.nRE = "ignore"))))
  rt <- if (glmm) glFormula(f, d, family = binomial)$reTrms else
    lFormula(f, d, control = lmerControl(check.nobs.vs.nRE = "ignore"))$reTrms
  nth <- length(rt$theta)
  Lt <- rt$Lambdat
  Lt@x <- (seq_len(nth) + 0.5)[rt$Lind]
  L <- as(t(Lt), "TsparseMatrix")
  out[[cs$id]] <- list(
    data = cs$data, formula = cs$formula, glmm = glmm, factors = names(Filter(is.factor, d)),
    theta_names = names(getME(m, "theta")), lower = rt$lower, start = rt$theta,
    q = nrow(L), lambda_i = L@i, lambda_j = L@j, lambda_x = L@x)
}
out[["_meta"]] <- list(script = "tests/oracle/theta_layout.R",
                       lme4 = as.character(packageVersion("lme4")), R = R.version.string)
con <- gzfile("tests/reference/theta_layout.json.gz", "w")
writeLines(toJSON(out, digits = 15, auto_unbox = TRUE, na = "null"), con)
close(con)
cat("written tests/reference/theta_layout.json.gz\n")
