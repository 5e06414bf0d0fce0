# broom.mixed's tidy(), glance() and augment() (and lmerTest's Satterthwaite table) for a few
# fits; writes tests/reference/tidy.json.gz, the oracle of tests/test_results_api.py.
# Run from the repo root:  Rscript tests/oracle/tidy.R
# Factors are built with sorted levels (numbers numerically), as mmfast does.
suppressMessages({library(lme4); library(lmerTest); library(broom.mixed); library(jsonlite)})
load_data <- function(name) read.csv(gzfile(file.path("src/mmfast/datasets/data", paste0(name, ".csv.gz"))))
as_fac <- function(x) factor(x, levels = sort(unique(x)))
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
frame_list <- function(df) lapply(as.list(as.data.frame(df)), function(x) if (is.factor(x)) as.character(x) else x)
dots <- function(a) frame_list(a[, grep("^\\.", names(a))])

out <- list()
sleep <- load_data("sleepstudy"); sleep$Subject <- as_fac(sleep$Subject)
for (reml in c(TRUE, FALSE)) {
  m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleep, REML = reml, control = ctrl)
  id <- if (reml) "sleep_reml" else "sleep_ml"
  out[[id]] <- list(
    data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", REML = reml, family = "gaussian",
    tidy = frame_list(tidy(m, conf.int = TRUE)),
    tidy90 = frame_list(tidy(m, effects = "fixed", conf.int = TRUE, conf.level = 0.9)),
    ran_vals = frame_list(tidy(m, effects = "ran_vals")),
    glance = frame_list(glance(m)),
    augment = dots(augment(m)),
    vcov = unname(as.matrix(vcov(m))))
}
sleep$w <- 1 + sleep$Days %% 3  # prior weights 1, 2, 3
m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleep, weights = w, control = ctrl)
out[["sleep_weighted"]] <- list(
  data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE, family = "gaussian",
  weights = "1 + Days %% 3",
  tidy = frame_list(tidy(m, conf.int = TRUE)), glance = frame_list(glance(m)),
  augment = dots(augment(m)))
mach <- load_data("Machines"); mach$Machine <- as_fac(mach$Machine); mach$Worker <- as_fac(mach$Worker)
m <- lmerTest::lmer(score ~ Machine + (0 + Machine | Worker), mach, control = ctrl)
out[["machines_3x3"]] <- list(
  data = "Machines", formula = "score ~ Machine + (0 + Machine | Worker)", REML = TRUE, family = "gaussian",
  tidy = frame_list(tidy(m, conf.int = TRUE)), glance = frame_list(glance(m)))

cbpp <- load_data("cbpp"); cbpp$herd <- as_fac(cbpp$herd); cbpp$period <- as_fac(cbpp$period)
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
tm <- glmmTMB::glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial)
out[["cbpp"]] <- list(
  data = "cbpp", formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)", family = "binomial",
  tidy = frame_list(tidy(g, conf.int = TRUE)),
  glance = frame_list(glance(g)),
  augment = dots(suppressWarnings(augment(g))),
  vcov = unname(as.matrix(vcov(g))),
  # glmmTMB: the same Laplace fit with an exact (AD) Hessian, the oracle of the standard
  # errors (lme4's finite-difference ones are ~1% off here; see src/mmfast/model/glmm.py)
  tmb_fixef = unname(glmmTMB::fixef(tm)$cond),
  tmb_se = unname(sqrt(diag(vcov(tm)$cond))))

out[["_meta"]] <- list(script = "tests/oracle/tidy.R",
                       lme4 = as.character(packageVersion("lme4")),
                       lmerTest = as.character(packageVersion("lmerTest")),
                       broom.mixed = as.character(packageVersion("broom.mixed")), R = R.version.string)
con <- gzfile("tests/reference/tidy.json.gz", "w")
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, na = "null"), con)
close(con)
