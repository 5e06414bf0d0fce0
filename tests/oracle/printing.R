# R's printed text (capture.output) of summaries, anova/drop1 tables and R's number formatters;
# writes tests/reference/printing.json.gz, the oracle of tests/test_printing.py and tests/test_rformat.py.
# Run from the repo root:  Rscript tests/oracle/printing.R
# Factors are built with sorted levels (numbers numerically), as mmfast does.
suppressMessages({library(lme4); library(lmerTest); library(jsonlite)})
options(width = 80)
load_data <- function(name) read.csv(gzfile(file.path("src/mmfast/datasets/data", paste0(name, ".csv.gz"))))
as_fac <- function(x) factor(x, levels = sort(unique(x)))
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
gctrl <- glmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
# the "Control: ctrl" line only records that the oracle tightened bobyqa; mmfast has no such line
txt <- function(x) grep("^Control:", capture.output(print(x)), value = TRUE, invert = TRUE)
out <- list()

sleepstudy <- load_data("sleepstudy"); sleepstudy$Subject <- as_fac(sleepstudy$Subject)
m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, control = ctrl)
out$sleep_summary <- list(formula = "Reaction ~ Days + (Days | Subject)", data = "sleepstudy",
                          REML = TRUE, text = txt(summary(m)))
m4 <- lme4::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE, control = ctrl)
out$sleep_lme4_ml <- list(formula = "Reaction ~ Days + (Days | Subject)", data = "sleepstudy",
                          REML = FALSE, text = txt(summary(m4)))
# lmerTest's ML title is longer than R's width: lme4 wraps it
m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = FALSE, control = ctrl)
out$sleep_ml_summary <- list(formula = "Reaction ~ Days + (Days | Subject)", data = "sleepstudy",
                             REML = FALSE, text = txt(summary(m)))
# prior weights from a column: the "Weights: w" line
sleepstudy$w <- 1 + sleepstudy$Days %% 3
m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, weights = w, control = ctrl)
out$sleep_weighted_summary <- list(formula = "Reaction ~ Days + (Days | Subject)", data = "sleepstudy",
                                   weights = "1 + Days %% 3", text = txt(summary(m)))
# tiny estimates: the slope is 8.7e-04 (R prints it so, never 0.0009)
sleepstudy$tiny <- sleepstudy$Reaction / 12000
m <- lmerTest::lmer(tiny ~ Days + (Days | Subject), sleepstudy, control = ctrl)
out$tiny_summary <- list(formula = "tiny ~ Days + (Days | Subject)", data = "sleepstudy",
                         REML = TRUE, text = txt(summary(m)))

Penicillin <- load_data("Penicillin")
Penicillin$plate <- as_fac(Penicillin$plate); Penicillin$sample <- as_fac(Penicillin$sample)
m <- lmerTest::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin, control = ctrl)
out$penicillin_summary <- list(formula = "diameter ~ 1 + (1 | plate) + (1 | sample)",
                               data = "Penicillin", REML = TRUE, text = txt(summary(m)))

cbpp <- load_data("cbpp"); cbpp$herd <- as_fac(cbpp$herd); cbpp$period <- as_fac(cbpp$period)
g <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cbpp, family = binomial,
           control = gctrl)
out$cbpp_summary <- list(formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)",
                         data = "cbpp", family = "binomial", text = txt(summary(g)))
g25 <- update(g, nAGQ = 25)
out$cbpp_agq25_summary <- list(nAGQ = 25, text = txt(summary(g25)))
out$cbpp_drop1 <- list(text = txt(drop1(g, test = "Chisq")))

m0 <- lmerTest::lmer(Reaction ~ Days + (1 | Subject), sleepstudy, control = ctrl)
m1 <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), sleepstudy, control = ctrl)
out$sleep_anova <- list(models = c("m0", "m1"), text = txt(suppressMessages(anova(m0, m1))))

out$lm_anova <- list(formula = "Reaction ~ Days", data = "sleepstudy",
                     text = txt(anova(lm(Reaction ~ Days, sleepstudy))))

Machines <- load_data("Machines")
Machines$Machine <- as_fac(Machines$Machine); Machines$Worker <- as_fac(Machines$Worker)
mm <- lme4::lmer(score ~ Machine + (1 | Worker), Machines, REML = FALSE, control = ctrl)
m3 <- lmerTest::lmer(score ~ Machine + (0 + Machine | Worker), Machines, control = ctrl)
out$machines_3x3_summary <- list(formula = "score ~ Machine + (0 + Machine | Worker)",
                                 data = "Machines", REML = TRUE, text = txt(summary(m3)))
out$machines_drop1 <- list(formula = "score ~ Machine + (1 | Worker)", data = "Machines",
                           text = txt(drop1(mm, test = "Chisq")))

Oats <- load_data("Oats"); Oats$Block <- as_fac(Oats$Block); Oats$Variety <- as_fac(Oats$Variety)
Oats$nitro <- as_fac(Oats$nitro)
mo <- lmerTest::lmer(yield ~ Variety * nitro + (1 | Block), Oats, control = ctrl)
out$oats_anova3 <- list(formula = "yield ~ Variety * nitro + (1 | Block)", data = "Oats",
                        text = txt(anova(mo)))

# the formatters on their own: format(), format.pval(), signif(), printCoefmat()
vecs <- list(c(251.405, 10.4673, 6.8246, 1.5458), c(8.6e-04, 0.0209, 1.2e-5), c(-1, 100),
             c(0.1, 0.123456789), c(1e-10, 1), c(123456789, 1), c(1e5, 1), c(0, 0.5, -2.25),
             c(99999.5, 1), c(3.14159265, NA, -Inf), c(1e-300, 2e-300), c(0.0005, 0.001),
             c(1e15, 1e-15), c(5, 10, 15), c(-0.000123, 0.5))
fmt <- list()
for (v in vecs) for (d in c(3L, 4L, 5L, 7L))
  fmt[[length(fmt) + 1]] <- list(x = v, digits = d, out = format(v, digits = d))
pv <- list(c(0.05, 0.001, 1e-5), c(1e-20, 0.3), c(2e-16, 0.5), c(3.26e-06, 1e-17), c(0.9, 0.04),
           c(1e-20), c(0.0123, 1e-4, 1e-3))
pvals <- list()
for (p in pv) for (d in c(1L, 2L, 3L, 4L))
  pvals[[length(pvals) + 1]] <- list(p = p, digits = d, out = format.pval(p, digits = d))
coefmats <- list()
cm <- cbind(Estimate = c(0.02095, 8.72e-4, -3.1), `Std. Error` = c(5.7e-4, 1.3e-4, 0.5),
            `z value` = c(36.8, 6.77, -6.2), `Pr(>|z|)` = c(1e-20, 1.3e-11, 0.06))
rownames(cm) <- c("(Intercept)", "Days", "x")
coefmats[[1]] <- list(x = unname(cm), rows = rownames(cm), cols = colnames(cm), digits = 4L,
                      text = capture.output(printCoefmat(cm, digits = 4)))
coefmats[[2]] <- list(x = unname(cm[, 1:3]), rows = rownames(cm), cols = colnames(cm)[1:3], digits = 5L,
                      text = capture.output(printCoefmat(cm[, 1:3], digits = 5)))
abbr <- c("(Intercept)", "factor(treatment_idx)2", "factor(treatment_idx)3", "period2", "Days:Subject",
          "log(x + 1)", "I(Days^2)", "a_b_c_d_e_f_g")
abbrevs <- lapply(c(4L, 6L, 11L), function(n) list(names = abbr, minlength = n,
                                                   out = unname(abbreviate(abbr, n))))
out$formatter <- list(format = fmt, format_pval = pvals, coefmat = coefmats, abbreviate = abbrevs)

out[["_meta"]] <- list(script = "tests/oracle/printing.R",
                       lme4 = as.character(packageVersion("lme4")),
                       lmerTest = as.character(packageVersion("lmerTest")), R = R.version.string)
con <- gzfile("tests/reference/printing.json.gz", "w")
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, na = "string"), con)
close(con)
